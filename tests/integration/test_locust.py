"""The locustfiles and the harness's Locust users against the real stack, each run as the `locust` command.

Every run is headless, bounded (-t a few seconds), targets 127.0.0.1, and is stopped by PID if it
overruns. Figures are checked against Locust's own statistics (--json-file), never against fixed speeds,
except where the point is a speed: 20 users sleeping 0.2 s in the database must overlap.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.app.gdpr_deploy import deploy_to_stack
from harness.config import Settings
from harness.data.app_role import app_credentials, data_root
from harness.data.loading import current_seed
from harness.data.profiles import get_profile
from harness.data.seed import seed
from harness.endpoints import StackEndpoints
from harness.measure.metrics import Statistic
from harness.measure.results import RunResults, load_results

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# A run's own -t plus Locust's start-up and shutdown, with room for a loaded machine.
RUN_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def ready_stack(stack: StackEndpoints, harness_settings: Settings) -> StackEndpoints:
    """The stack with data and the GDPR functions; a stack that holds data keeps it."""
    if current_seed(stack.direct) is None:
        _, password = app_credentials(stack, harness_settings.state_dir)
        seed(stack.direct, get_profile("ci"), data_root(harness_settings.state_dir), password)
    deploy_to_stack(stack, harness_settings.state_dir)
    return stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def locust_command(locustfile: str | Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(locustfile), *args]


def run_locust(
    locustfile: str | Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # subprocess.run kills the process by PID if it overruns the timeout.
    return subprocess.run(
        locust_command(locustfile, *args),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def requests_in(stats_file: Path) -> tuple[int, int]:
    """Requests and failures Locust counted, from its --json-file."""
    entries = json.loads(stats_file.read_text())
    return sum(e["num_requests"] for e in entries), sum(e["num_failures"] for e in entries)


def count(results: RunResults, metric: str) -> float:
    return results.get(metric).statistic(Statistic("count")).value


def test_twenty_users_sleeping_in_the_database_overlap_instead_of_queueing(ready_stack, tmp_path: Path) -> None:
    locustfile = tmp_path / "sleepers.py"
    locustfile.write_text(
        textwrap.dedent(
            """
            from locust import constant, task

            from harness.locustusers.users import PostgresUser


            class Sleeper(PostgresUser):
                wait_time = constant(0)

                @task
                def sleep(self) -> None:
                    self.pg.execute("pg_sleep", "SELECT pg_sleep(0.2)")
            """
        )
    )
    run = run_locust(
        locustfile, "--headless", "-u", "20", "-r", "200", "-t", "4s", "--pool-size", "20",
        "--results", str(tmp_path / "results.json"), "--json-file", str(tmp_path / "stats"),
    )  # fmt: skip
    assert run.returncode in (0, 3), run.stderr[-3000:]
    (stats,) = json.loads((tmp_path / "stats.json").read_text())
    latency = load_results(tmp_path / "results.json").get("locust.request_ms")
    # Timed from the first request: opening the pool's 20 connections comes before it.
    window_s = stats["last_request_timestamp"] - stats["start_time"]
    rate = stats["num_requests"] / window_s
    # Overlapping, 20 sleeps of 0.2 s end every 0.2 s: 100 a second. Queued behind one blocking wait: 5.
    assert stats["num_failures"] == 0
    assert window_s > 1
    assert rate >= 70, f"{stats['num_requests']} sleeps in {window_s:.1f} s: {rate:.0f}/s, not about 100/s"
    assert 200 <= latency.statistic(Statistic("p", 50)).value < 300


def test_a_locust_run_with_cloudwatch_publishes_the_units_metrics_and_records_them(ready_stack, tmp_path: Path) -> None:
    locustfile = tmp_path / "selects.py"
    locustfile.write_text(
        textwrap.dedent(
            """
            from locust import constant, task

            from harness.locustusers.users import PostgresUser


            class Selecter(PostgresUser):
                wait_time = constant(0.05)

                @task
                def select(self) -> None:
                    self.pg.execute("select_1", "SELECT 1")
            """
        )
    )
    run = run_locust(
        locustfile, "--headless", "-u", "2", "-r", "10", "-t", "6s", "--cloudwatch",
        "--results", str(tmp_path / "results.json"),
    )  # fmt: skip
    assert run.returncode in (0, 3), run.stderr[-3000:]
    facts = load_results(tmp_path / "results.json").run["cloudwatch"]
    assert "publish_failures" not in facts, facts["publish_failures"]
    counts = facts["metrics"]["datapoints"]
    for metric in ("CPUUtilization", "DatabaseConnections", "CPUCreditBalance"):
        assert counts[f"AWS/RDS {metric} DBInstanceIdentifier=dbunit-postgres"] > 0, (metric, counts)
    assert counts["AWS/ElastiCache CurrConnections CacheClusterId=dbunit-redis,CacheNodeId=0001"] > 0, counts
    database = facts["dashboards"]["dashboards"]["dbunit-database"]
    assert any(line.get("points") for w in database["widgets"] for line in w["lines"]), database


def import_users_after_psycopg(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import psycopg; import harness.locustusers.users"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def test_psycopg_imported_before_gevent_patches_is_refused_with_the_fix() -> None:
    run = import_users_after_psycopg()
    assert run.returncode != 0
    assert "psycopg was imported before gevent patched" in run.stderr


def test_psycopg_told_to_wait_with_select_is_accepted_with_a_warning_about_connecting() -> None:
    run = import_users_after_psycopg(PSYCOPG_WAIT_FUNC="wait_select")
    assert run.returncode == 0, run.stderr
    assert "opening a connection blocks every user" in run.stderr


def test_without_a_stack_the_run_stops_at_once_and_says_harness_up(tmp_path: Path) -> None:
    env = {**os.environ, "HARNESS_STATE_DIR": str(tmp_path / "nothing-here")}
    run = run_locust("locustfiles/vector_search.py", "--headless", "-t", "5s", env=env)
    assert run.returncode == 1
    assert "`harness up`" in run.stderr


def test_master_and_two_workers_merge_exact_histograms(ready_stack, tmp_path: Path) -> None:
    port = free_port()
    master_args = [
        "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--expect-workers", "2", "--expect-workers-max-wait", "30", "--headless", "-u", "6", "-r", "6", "-t", "6s",
        "--results", str(tmp_path / "results.json"), "--json-file", str(tmp_path / "stats"),
    ]  # fmt: skip
    master = subprocess.Popen(
        locust_command("locustfiles/vector_search.py", *master_args),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers = [
        subprocess.Popen(
            locust_command(
                "locustfiles/vector_search.py", "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)
            ),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        _, master_log = master.communicate(timeout=RUN_TIMEOUT_S)
        worker_codes = [worker.wait(timeout=RUN_TIMEOUT_S) for worker in workers]
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert worker_codes == [0, 0]
    assert master.returncode in (0, 3, 4), master_log[-3000:]
    assert f"(exit {master.returncode}:" in master_log
    requests, failures = requests_in(tmp_path / "stats.json")
    results = load_results(tmp_path / "results.json")
    assert requests > 0
    assert count(results, "locust.request_ms") == requests
    assert count(results, "vector_search.latency_ms") == requests - failures
    assert results.get("vector_search.recall_at_10").statistic(Statistic("mean")).value > 0.5
    assert results.run["locust"]["workers"] == 2


def test_a_critical_breach_fails_the_run_and_the_report_is_rendered(ready_stack, tmp_path: Path) -> None:
    run = run_locust(
        "locustfiles/vector_search.py", "--headless", "-u", "2", "-t", "2s",
        "--threshold-set", "vector_search.latency_ms:warning=p95 < 0.001ms",
        "--threshold-set", "vector_search.latency_ms:critical=p95 < 0.002ms",
        "--results", str(tmp_path / "results.json"), "--report-dir", str(tmp_path / "report"),
    )  # fmt: skip
    assert run.returncode == 4, run.stderr[-3000:]
    assert "FAIL    vector_search.latency_ms" in run.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["exit_code"] == 4
    assert {t["id"] for t in report["thresholds"]} == {
        "vector_search.latency_ms",
        "vector_search.recall_at_10",
        "locust.failure_rate_pct",
    }
    # The environment it states: nothing it calls "not recorded" is recorded (versions, sizing, the data).
    assert {"versions", "sizing", "cgroups", "data_profile"} <= set(report["run"])
    assert "Not recorded in this run" not in (tmp_path / "report" / "report.html").read_text()
    # Recall's N is the number of queries behind it, not the one sample the run recorded.
    recall = next(t for t in report["thresholds"] if t["id"] == "vector_search.recall_at_10")
    assert recall["sample_size"] > 1


@pytest.mark.parametrize(("locustfile", "shape"), [("cache.py", "ramp"), ("mixed.py", "soak")])
def test_locustfiles_run_with_a_shape_and_are_judged(ready_stack, tmp_path: Path, locustfile: str, shape: str) -> None:
    run = run_locust(
        f"locustfiles/{locustfile}", "--headless", "--shape", shape, "-u", "6", "-t", "4s",
        "--results", str(tmp_path / "results.json"), "--json-file", str(tmp_path / "stats"),
    )  # fmt: skip
    # Short runs on a shared stack may breach a level (a cold cache); they must never be broken.
    assert run.returncode in (0, 3, 4), run.stderr[-3000:]
    assert f"shape {shape}:" in run.stderr
    results = load_results(tmp_path / "results.json")
    assert count(results, "locust.request_ms") == requests_in(tmp_path / "stats.json")[0]
    assert count(results, "cache.hit_rate_pct") > 0


def test_a_lambda_spike_counts_throttles_as_throttles_not_as_unexplained_failures(ready_stack, tmp_path: Path) -> None:
    run = run_locust(
        "locustfiles/gdpr_lambdas.py", "--headless", "--shape", "spike", "-u", "2", "--spike-users", "14",
        "-t", "6s", "--results", str(tmp_path / "results.json"), "--json-file", str(tmp_path / "stats"),
    )  # fmt: skip
    results = load_results(tmp_path / "results.json")
    throttle_metrics = [f"lambda.{f}.throttles" for f in ("data_export", "data_deletion", "audit_logging")]
    throttles = sum(count(results, metric) for metric in throttle_metrics if results.get(metric))
    _, failures = requests_in(tmp_path / "stats.json")
    # Throttled invocations are Locust failures; the gate counts them as throttles (a warning), not as
    # failed requests.
    assert failures == throttles
    assert results.get("locust.failure_rate_pct").statistic(Statistic("rate")).value == 0
    assert run.returncode == (3 if throttles else 0), run.stderr[-3000:]
