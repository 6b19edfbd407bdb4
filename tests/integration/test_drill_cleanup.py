"""Nothing is left running after a drill or a restore, also when it fails half-way: restored instances are
stopped by PID, the proxy points back at the unit's own instance, `harness down` stops restores too, and
the network drill's fault proxies stop listening, and the Lambda drill gives the function its configuration
back and removes its throw-away user."""

import socket
import threading
import time
from typing import Any

import numpy as np
import psutil
import psycopg
import pytest

from harness.app.gdpr_deploy import APP_DB_SECRET_ID, definitions, deploy_to_stack
from harness.app.gdpr_invoke import lambda_client
from harness.backends import get_backend
from harness.backup.restore import restores_root, running_restores
from harness.backup.unit import backup_target, restore_spec
from harness.data.app_role import AppRoleError, app_credentials, app_endpoint, data_root
from harness.data.profiles import get_profile
from harness.data.seed import seed
from harness.drills import database, lambda_export, network
from harness.drills.result import DrillResult
from harness.services.fault_proxy import FaultProxy, running_fault_proxies

pytestmark = pytest.mark.integration


def restored_processes(root: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if root in " ".join(p.info["cmdline"] or [])]


def test_a_database_drill_that_fails_half_way_stops_its_restore_and_points_the_proxy_back(
    stack, harness_settings, monkeypatch
):
    if stack.backend != "embedded":
        pytest.skip("drills need the embedded stack")

    def broken_validation(*args, **kwargs):
        raise RuntimeError("validation blew up half-way")

    monkeypatch.setattr(database, "validate", broken_validation)
    backend = get_backend(harness_settings)
    with pytest.raises(RuntimeError, match="half-way"):
        database.run(
            backend,
            stack,
            backup_target(harness_settings, stack),
            restore_spec(harness_settings, stack),
            harness_settings.state_dir / "pgbouncer",
            report=lambda _: None,
        )
    assert running_restores(harness_settings.state_dir) == []
    assert backend.status().healthy
    # PgBouncer waits server_login_retry (15 s) after the logins that failed while the instance was gone.
    assert proxy_target_port(stack, within_s=60) == stack.direct.port


def proxy_target_port(stack, within_s: float) -> int:
    deadline = time.monotonic() + within_s
    while True:
        try:
            with stack.proxy.connect(autocommit=True, connect_timeout=10) as conn:
                return int(conn.execute("SELECT inet_server_port()").fetchone()[0])
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_harness_down_stops_a_restored_instance_by_pid(isolated_stack):
    up = isolated_stack.harness("up", timeout=180)
    assert up.returncode == 0, up.stderr
    created = isolated_stack.harness("backup", "create", timeout=300)
    assert created.returncode == 0, created.stderr
    restored = isolated_stack.harness("backup", "restore", "--latest", timeout=300)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "running at" in restored.stdout
    root = str(restores_root(isolated_stack.state_dir))
    assert restored_processes(root)
    down = isolated_stack.harness("down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert "restored instance" in down.stderr
    assert restored_processes(root) == []
    assert isolated_stack.processes_mentioning_state() == []


def test_a_network_drill_that_fails_half_way_stops_its_fault_proxies(stack, monkeypatch):
    started: list[int] = []
    real_start = FaultProxy.start

    def recording_start(self, *args, **kwargs):
        proxy = real_start(self, *args, **kwargs)
        started.append(proxy.port)
        return proxy

    def broken_summary(requests):
        raise RuntimeError("measurement blew up half-way")

    monkeypatch.setattr(FaultProxy, "start", recording_start)
    monkeypatch.setattr(network, "summary", broken_summary)
    # Independent of the seed: the admin through the proxy, one user id whether it exists or not.
    monkeypatch.setattr(network, "_users", lambda app: np.array([1], dtype=np.int64))
    with pytest.raises(RuntimeError, match="half-way"):
        network.run(stack, stack.proxy, report=lambda _: None)
    assert len(started) == 2
    assert running_fault_proxies() == []
    for port in started:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not [t.name for t in threading.enumerate() if t.name.startswith(("fault-", "drill-"))]


def seeded_users(stack, state_dir) -> tuple[Any, int]:
    """The application's direct endpoint and the highest user id: the drill clones a seeded user, so a
    database without the application's users (never seeded, or left with other data by an earlier test)
    gets the ci profile, as the scenarios' `seeded` fixture would."""
    for attempt in range(2):
        try:
            app_direct = app_endpoint(stack, state_dir, via_proxy=False)
            with app_direct.connect(autocommit=True) as conn:
                last = conn.execute("SELECT max(user_id) FROM users").fetchone()[0]
            if last is not None:
                return app_direct, int(last)
        except (AppRoleError, psycopg.errors.UndefinedTable):
            if attempt:
                raise
        _, password = app_credentials(stack, state_dir)
        seed(stack.direct, get_profile("ci"), data_root(state_dir), password, force=True, progress=False)
    raise AssertionError("the ci seed left no users")


def test_a_lambda_drill_that_fails_half_way_restores_the_function_and_removes_its_user(
    stack, harness_settings, monkeypatch
):
    if stack.backend != "embedded":
        pytest.skip("drills need the embedded stack")
    app_direct, last_user = seeded_users(stack, harness_settings.state_dir)

    def broken_invoke(client, function, payload):
        raise RuntimeError("invocation blew up half-way")

    monkeypatch.setattr(lambda_export, "invoke", broken_invoke)
    with pytest.raises(RuntimeError, match="half-way"):
        lambda_export.run(stack, app_direct, harness_settings.state_dir, report=lambda _: None)
    config = lambda_client(stack.aws).get_function_configuration(FunctionName="data_export")
    deployed = definitions(["data_export"])[0]
    assert (config["MemorySize"], config["Timeout"]) == (deployed.memory_mb, deployed.timeout_s)
    with app_direct.connect(autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE user_id > %s", (last_user,)).fetchone()[0] == 0


def test_a_lambda_failing_in_the_network_drill_gets_its_database_secret_back(stack, harness_settings, monkeypatch):
    if stack.backend != "embedded":
        pytest.skip("drills need the embedded stack")
    deploy_to_stack(stack, harness_settings.state_dir, names=[network.LAMBDA_FUNCTION])
    secrets = stack.aws.client("secretsmanager")
    functions = lambda_client(stack.aws)
    secret_before = secrets.get_secret_value(SecretId=APP_DB_SECRET_ID)["SecretString"]
    description_before = functions.get_function_configuration(FunctionName=network.LAMBDA_FUNCTION)["Description"]

    def broken_invoke(client, function, payload):
        raise RuntimeError("invocation blew up half-way")

    monkeypatch.setattr(network, "invoke", broken_invoke)
    with FaultProxy(stack.proxy.host, stack.proxy.port) as fault, pytest.raises(RuntimeError, match="half-way"):
        network.lambda_through_blackhole(stack, harness_settings.state_dir, fault, DrillResult("n"), lambda _: None)
    assert secrets.get_secret_value(SecretId=APP_DB_SECRET_ID)["SecretString"] == secret_before
    assert functions.get_function_configuration(FunctionName=network.LAMBDA_FUNCTION)["Description"] == (
        description_before
    )
    assert running_fault_proxies() == []
