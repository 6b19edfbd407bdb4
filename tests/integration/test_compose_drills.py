"""Kill and restart on the compose backend against a real engine: a SIGKILLed PostgreSQL container comes
back on its volume with every acknowledged write, and each service restarted is healthy again and answers.

The stack is the compose_stack fixture's (its own state directory, project and free ports); the backend is
driven in-process with that stack's settings, as the drills drive it.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from harness.backends import get_backend
from harness.backends.compose import ComposeBackend
from harness.backends.probes import probe_stack
from harness.config import resolve_settings
from harness.endpoints import StackEndpoints
from harness.services.process import ServiceError

pytestmark = [pytest.mark.integration, pytest.mark.compose]


@pytest.fixture(scope="module")
def backend(compose_stack) -> ComposeBackend:
    found = get_backend(resolve_settings(environ=compose_stack.env))
    assert isinstance(found, ComposeBackend)
    return found


@pytest.fixture(scope="module")
def endpoints(compose_stack) -> StackEndpoints:
    return compose_stack.endpoints()


def test_the_compose_backend_kills_and_restarts_every_service_its_file_runs(backend):
    # The Lambda image's service sits under a profile compose never starts; the runtime is the harness's own.
    assert set(backend.services()) == {"postgres", "pgbouncer", "redis", "aws", "lambda"}
    assert all(backend.can_restart(service) for service in backend.services())
    assert not backend.can_restart("nonsense")
    with pytest.raises(ServiceError, match="unknown service 'nonsense'"):
        backend.kill("nonsense", print)


def test_a_killed_postgres_container_comes_back_with_every_acknowledged_write(backend, endpoints):
    with endpoints.direct.connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS compose_kill")
        conn.execute("CREATE TABLE compose_kill (n integer PRIMARY KEY)")
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                with endpoints.direct.connect(autocommit=True, connect_timeout=2) as conn:
                    while not stop.is_set():
                        conn.execute("INSERT INTO compose_kill VALUES (%s)", (n,))
                        acknowledged.append(n)
                        n += 1
            except psycopg.Error:
                stop.wait(0.1)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while len(acknowledged) < 50:
            stop.wait(0.05)
        backend.kill("postgres", print)
        killed_with = len(acknowledged)
        backend.up(print)
    finally:
        stop.set()
        thread.join(timeout=30)
    with endpoints.direct.connect() as conn:
        stored = {row[0] for row in conn.execute("SELECT n FROM compose_kill")}
        conn.execute("DROP TABLE compose_kill")
    assert killed_with >= 50
    assert [n for n in acknowledged if n not in stored] == []


@pytest.mark.parametrize("service", ["postgres", "pgbouncer", "redis", "aws", "lambda"])
def test_a_restarted_service_is_healthy_again_when_restart_returns(backend, endpoints, service):
    backend.restart(service, print)
    # No wait here: restart returns once the service's own healthcheck passed, so the host's probes answer.
    rows = {row.name: row for row in probe_stack(endpoints)}
    assert all(row.healthy for row in rows.values()), {name: row.detail for name, row in rows.items()}


def test_a_killed_lambda_runtime_is_started_again_by_up_and_answers(backend, endpoints):
    backend.kill("lambda", print)
    backend.up(print)
    (row,) = [row for row in backend.status().services if row.name.startswith("lambda")]
    assert row.healthy, row.detail
    functions = endpoints.aws.client("lambda").list_functions()
    assert functions["ResponseMetadata"]["HTTPStatusCode"] == 200
