"""`harness up`/`down` on a throw-away stack: idempotence, recovery, clean stops, clear errors."""

import json
import os
import shlex
import signal
import socket
import time
from urllib.parse import parse_qs, urlsplit

import psutil
import psycopg
import pytest

pytestmark = pytest.mark.integration


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)


def test_up_twice_is_a_no_op_and_down_leaves_no_process(isolated_stack):
    first = isolated_stack.harness("up")
    assert first.returncode == 0, first.stderr
    pids = isolated_stack.pids()
    assert set(pids) == {"postgres", "pgbouncer", "redis", "aws", "lambda"}

    second = isolated_stack.harness("up")
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("already running") == 5
    assert isolated_stack.pids() == pids

    status = isolated_stack.harness("status", "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["healthy"] is True

    down = isolated_stack.harness("down")
    assert down.returncode == 0, down.stderr
    for pid in pids.values():
        wait_gone(pid)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert isolated_stack.processes_mentioning_state() == []
    assert not (isolated_stack.state_dir / "endpoints.json").exists()
    assert isolated_stack.harness("status").returncode == 1


def test_env_exports_endpoints_a_shell_can_use(isolated_stack):
    assert isolated_stack.harness("up").returncode == 0
    env = isolated_stack.harness("env")
    assert env.returncode == 0
    exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in env.stdout.splitlines())
    url = urlsplit(exported["DATABASE_URL"])
    assert (url.port, url.path) == (isolated_stack.ports["proxy_port"], "/dbunit")
    # TLS on by default: the URL verifies the proxy against the stack's CA, and works as given.
    assert parse_qs(url.query)["sslmode"] == ["verify-full"]
    with psycopg.connect(exported["DATABASE_URL"], connect_timeout=10, prepare_threshold=None) as conn:
        assert conn.pgconn.ssl_in_use
    assert exported["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{isolated_stack.ports['aws_port']}"
    assert exported["AWS_ENDPOINT_URL_LAMBDA"] == f"http://127.0.0.1:{isolated_stack.ports['lambda_port']}"


def test_up_after_a_crash_recovers(isolated_stack):
    assert isolated_stack.harness("up").returncode == 0
    pids = isolated_stack.pids()
    for name in ("postgres", "redis"):
        os.kill(pids[name], signal.SIGKILL)
        wait_gone(pids[name])
    status = isolated_stack.harness("status")
    assert status.returncode == 1
    again = isolated_stack.harness("up")
    assert again.returncode == 0, again.stderr
    new = isolated_stack.pids()
    assert new["postgres"] != pids["postgres"] and new["redis"] != pids["redis"]
    assert new["pgbouncer"] == pids["pgbouncer"]
    assert isolated_stack.harness("status").returncode == 0


def test_half_initialised_data_directory_is_rebuilt(isolated_stack):
    assert isolated_stack.harness("up").returncode == 0
    assert isolated_stack.harness("down").returncode == 0
    # What a crash between initdb and the end of bootstrap leaves behind.
    (isolated_stack.state_dir / "postgres" / "data" / ".harness-initialised").unlink()
    again = isolated_stack.harness("up")
    assert again.returncode == 0, again.stderr
    assert isolated_stack.harness("status").returncode == 0


def test_busy_port_is_a_clear_error_and_nothing_is_left_running(isolated_stack):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", isolated_stack.ports["redis_port"]))
    squatter.listen()
    try:
        result = isolated_stack.harness("up")
    finally:
        squatter.close()
    assert result.returncode == 1
    port = isolated_stack.ports["redis_port"]
    assert f"port {port} for Redis is already in use" in result.stderr
    assert "HARNESS_REDIS_PORT" in result.stderr
    assert isolated_stack.processes_mentioning_state() == []
    assert not (isolated_stack.state_dir / "endpoints.json").exists()


def test_missing_binary_is_a_clear_error_and_nothing_is_left_running(isolated_stack, tmp_path):
    # A PATH without /usr/bin hides redis-server; the interpreter is invoked by absolute path.
    env = {**isolated_stack.env, "PATH": str(tmp_path)}
    result = isolated_stack.harness("up", env=env)
    assert result.returncode == 1
    assert "redis-server not found" in result.stderr
    assert "apt-get install redis-server" in result.stderr
    assert isolated_stack.processes_mentioning_state() == []


def test_bad_configuration_exits_2_before_starting_anything(isolated_stack):
    env = {**isolated_stack.env, "HARNESS_POSTGRES_PORT": "not-a-port"}
    result = isolated_stack.harness("up", env=env)
    assert result.returncode == 2
    assert "HARNESS_POSTGRES_PORT: postgres_port must be int" in result.stderr
    assert not isolated_stack.state_dir.exists()
