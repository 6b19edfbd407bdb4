"""Failure drills at the run's size: each service SIGKILLed with nothing lost, the database crashed and then
lost (restore from backup, proxy switched, validated, traffic resumed), the proxy restarted under writes,
Redis killed under cache-aside reads, and network faults (latency, jitter, resets, blackholes) through
fault-injecting proxies in front of the proxy and Redis, and a GDPR export killed mid-way (timeout, out of
memory) then retried, with a deletion retried.

Destructive: skipped on a backend the harness cannot kill services of (the backend says: can_restart),
refused on an external deployment unless HARNESS_ALLOW_DESTRUCTIVE=1. Figures go to the results file
(drill.* metrics, judged by fixtures/thresholds.yaml); the assertions are the behaviour: nothing
acknowledged is lost, nothing left running. What a backend cannot do (the compose stack keeps no backups
and runs no Lambda runtime of the harness's) is recorded as NOT EMULATED with the reason, for the report.
"""

from __future__ import annotations

import psutil
import pytest

from harness.backends import get_backend
from harness.backends.guard import require_destructive_allowed
from harness.backup.restore import restores_root, running_restores
from harness.backup.unit import restore_spec
from harness.data.app_role import app_endpoint
from harness.drills import cache, database, lambda_export, network, proxy, service_kills
from harness.services.fault_proxy import running_fault_proxies

pytestmark = pytest.mark.integration


@pytest.fixture
def backend(stack, harness_settings):
    require_destructive_allowed(harness_settings, "the failure drills")
    backend = get_backend(harness_settings)
    if not backend.can_restart("postgres"):
        pytest.skip(f"the {stack.backend} backend cannot SIGKILL or restart services; drills need a stack it owns")
    return backend


@pytest.fixture
def nothing_left_running(harness_settings):
    """The drill's own restores are gone afterwards; one a user restored and kept beforehand may stay."""
    kept = set(running_restores(harness_settings.state_dir))
    yield
    left = [d for d in running_restores(harness_settings.state_dir) if d not in kept]
    assert left == [], f"restored instances the drill left behind: {left}"
    root = restores_root(harness_settings.state_dir)

    def of_the_drill(cmdline: list[str] | None) -> bool:
        """A process under the restores' directory, but not under a restore kept from before."""
        return any(
            str(root) in arg and not any(arg.endswith(str(d)) or f"{d}/" in arg for d in kept) for arg in cmdline or []
        )

    strays = [p.pid for p in psutil.process_iter(["cmdline"]) if of_the_drill(p.info["cmdline"])]
    assert strays == [], f"processes of restored instances the drill started still running: {strays}"


def test_every_service_killed_with_sigkill_comes_back_with_everything_the_unit_held(backend, stack, seeded, results):
    result = service_kills.run(backend, stack)
    print("\n".join(result.lines()))
    lost = [name for name, ok, _ in result.checks if not ok]
    results.record_count("drill.services.lost_items", len(lost))
    assert not lost, result.lines()


def test_a_database_crash_loses_no_acknowledged_write_and_a_lost_instance_is_restored_behind_the_proxy(
    backend, stack, seeded, harness_settings, results, nothing_left_running
):
    target, restore_not_emulated = database.restore_target(harness_settings, stack)
    if target is None:
        for metric in ("drill.restore.rto_s", "drill.restore.lost_writes"):
            results.record_not_emulated(metric, restore_not_emulated)
    result = database.run(
        backend,
        stack,
        target,
        restore_spec(harness_settings, stack),
        harness_settings.state_dir / "pgbouncer",
        restore_not_emulated=restore_not_emulated,
    )
    print("\n".join(result.lines()))
    f = result.figures
    if f.get("crash_recovery_s") is not None:
        results.record_value("drill.crash.recovery_s", f["crash_recovery_s"])
    results.record_count("drill.crash.failed_requests", f["crash_failed_requests"])
    results.record_count("drill.crash.lost_writes", f["crash_acknowledged_writes_lost"])
    if f.get("restore_rto_s") is not None:
        results.record_value("drill.restore.rto_s", f["restore_rto_s"])
    if target is not None:
        results.record_count("drill.restore.lost_writes", f["restore_acknowledged_writes_lost"])
    assert f["crash_acknowledged_writes"] > 0 and f["crash_acknowledged_writes_lost"] == 0
    assert result.passed, result.lines()
    # The proxy is back on the unit's own instance: the server it reaches listens where the direct endpoint's does.
    port = "SELECT inet_server_port()"
    with stack.proxy.connect(autocommit=True, connect_timeout=10) as proxied, stack.direct.connect() as direct:
        assert proxied.execute(port).fetchone() == direct.execute(port).fetchone()


def test_a_proxy_restart_under_writes_loses_no_acknowledged_write(backend, stack, results):
    result = proxy.run(backend, stack)
    print("\n".join(result.lines()))
    f = result.figures
    if f.get("reconnect_s") is not None:
        results.record_value("drill.proxy.reconnect_s", f["reconnect_s"])
    results.record_count("drill.proxy.failed_requests", f["failed_requests"])
    results.record_count("drill.proxy.lost_writes", f["acknowledged_writes_lost"])
    assert f["acknowledged_writes"] > 0
    assert result.passed, result.lines()


def test_a_cache_failure_degrades_reads_to_postgresql_and_warming_restores_the_hit_rate(
    backend, stack, seeded, harness_settings, results
):
    result = cache.run(backend, stack, app_endpoint(stack, harness_settings.state_dir))
    print("\n".join(result.lines()))
    f = result.figures
    results.record_value("drill.cache.error_rate_pct", f["error_rate_pct"])
    for warming in ("cold", "warmed"):
        recovery = f[f"{warming}_recovery_to_70pct_s"]
        if recovery is not None:
            results.record_value("drill.cache.recovery_s", recovery, labels={"warming": warming})
        points = [{k: p[k] for k in ("t", "hit_rate", "db_queries_per_s")} for p in f[f"{warming}_curve"]]
        results.record_series("drill.cache.hit_rate_curve", points, labels={"warming": warming})
    assert f["failed_requests"] == 0 and f["requests"] > 0
    if stack.backend == "embedded":
        # The database's side of the outage is measured, not inferred from the reader's queries/s.
        assert f["down_db_cpu_pct_max"] is not None and f["steady_db_cpu_pct_max"] is not None
        assert f["down_db_connections_max"] >= 1
    assert result.passed, result.lines()


def test_network_faults_fail_requests_within_the_clients_bounds_and_lose_no_acknowledged_write(
    backend, stack, seeded, harness_settings, results
):
    result = network.run(
        stack,
        app_endpoint(stack, harness_settings.state_dir),
        pg_port=harness_settings.fault_pg_port,
        redis_port=harness_settings.fault_redis_port,
        state_dir=harness_settings.state_dir,
    )
    print("\n".join(result.lines()))
    f = result.figures
    results.record_count("drill.network.lost_writes", f["writer_acknowledged_lost"])
    for link in ("postgres", "redis"):
        hole = f[f"blackhole_{link}"]
        results.record_value("drill.network.blackhole_request_s", hole["max_ms"] / 1000, labels={"link": link})
        if hole["recovery_s"] is not None:
            results.record_value("drill.network.recovery_s", hole["recovery_s"], labels={"link": link})
    assert f["writer_acknowledged"] > 0 and f["writer_acknowledged_lost"] == 0
    assert result.passed, result.lines()
    assert running_fault_proxies() == []


def test_an_export_killed_mid_way_leaves_nothing_partial_and_its_retry_writes_exactly_one_complete_object(
    backend, stack, seeded, harness_settings, results
):
    not_emulated = lambda_export.not_emulated_reason(backend, stack)
    if not_emulated:
        results.record_not_emulated("drill.lambda.partial_exports", not_emulated)
        pytest.skip(f"NOT EMULATED: {not_emulated}")
    app_direct = app_endpoint(stack, harness_settings.state_dir, via_proxy=False)
    result = lambda_export.run(stack, app_direct, harness_settings.state_dir)
    print("\n".join(result.lines()))
    f = result.figures
    results.record_count("drill.lambda.partial_exports", f["partial_exports"])
    assert f["timeout_error"] == "Sandbox.Timedout" and f["oom_error"] == "Runtime.OutOfMemory"
    assert f["export_objects"] == 1
    if stack.backend == "embedded":
        # Killed between its object and its audit entry, then retried twice with the same export id.
        assert (f["kill_window_objects"], f["kill_window_audit_entries"]) == (1, 1)
    assert result.passed, result.lines()
