"""What PgBouncer in transaction mode really does with the statements the pinning analysis classifies, here:
a leak is seen by the next client, an error is raised to the same client, "fine" leaves nothing behind.

A PgBouncer of its own with two server connections in front of the stack's PostgreSQL makes the outcome
deterministic: PgBouncer hands out the most recently used idle server connection, so client B gets the one
client A just used, and while B holds it inside a transaction, A's next statement goes to the other one.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from harness.config import Settings
from harness.endpoints import PostgresEndpoint, StackEndpoints
from harness.services.osuser import server_user
from harness.services.pgbouncer import PgBouncerService
from harness.services.process import PidFiles
from harness.sizing import postgres_sizing, proxy_sizing
from harness.workload.pinning import ERROR, FINE, LEAK, analyse

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def two_connection_proxy(stack: StackEndpoints, harness_settings: Settings) -> Iterator[PostgresEndpoint]:
    # Not under pytest's private tmp: PgBouncer runs as the unprivileged server account and reads its config.
    root = Path(tempfile.mkdtemp(prefix="dbunit-pinning-"))
    root.chmod(0o755)
    sizing = dataclasses.replace(proxy_sizing(postgres_sizing("db.t3.micro")), pool_size=2)
    service = PgBouncerService(
        conf_dir=root / "conf",
        log_path=root / "pgbouncer.log",
        port=free_port(),
        upstream_port=stack.direct.port,
        database=stack.direct.dbname,
        master_user=stack.direct.user,
        master_password=stack.direct.password,
        sizing=sizing,
        user=server_user(harness_settings.postgres_os_user),
        pids=PidFiles(root / "run"),
        timeout_s=30,
    )
    service.start()
    try:
        yield service.endpoint()
    finally:
        service.stop()
        shutil.rmtree(root, ignore_errors=True)


def client(endpoint: PostgresEndpoint) -> psycopg.Connection:
    return endpoint.connect(autocommit=True, prepare_threshold=None)


def leaked(a: psycopg.Connection, b: psycopg.Connection, statement: str, check: str) -> object:
    """B's view right after A ran the statement (B gets the server connection A used)."""
    a.execute(statement)
    row = b.execute(check).fetchone()
    return row[0] if row else None


def failed_on_another_connection(a: psycopg.Connection, b: psycopg.Connection, statement: str, follow_up: str):
    """A's follow-up while B holds the server connection A used: it runs on the other one."""
    a.execute(statement)
    with b.transaction():
        b.execute("SELECT 1")
        try:
            a.execute(follow_up)
        except psycopg.Error as exc:
            return type(exc).__name__
    return None


Probe = Callable[[psycopg.Connection, psycopg.Connection], object]

CASES: list[tuple[str, Probe, str]] = [
    (
        "SET work_mem = '7MB'",
        lambda a, b: leaked(a, b, "SET work_mem = '7MB'", "SHOW work_mem") == "7MB",
        LEAK,
    ),
    (
        "SELECT pg_advisory_lock(4242)",
        lambda a, b: (
            leaked(
                a,
                b,
                "SELECT pg_advisory_lock(4242)",
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            )
            == 1
        ),
        LEAK,
    ),
    (
        "CREATE TEMP TABLE scratch (id int)",
        lambda a, b: (
            failed_on_another_connection(a, b, "CREATE TEMP TABLE scratch (id int)", "SELECT * FROM scratch")
            == "UndefinedTable"
        ),
        ERROR,
    ),
    (
        "PREPARE probe AS SELECT 1",
        lambda a, b: (
            failed_on_another_connection(a, b, "PREPARE probe AS SELECT 1", "EXECUTE probe")
            == "InvalidSqlStatementName"
        ),
        ERROR,
    ),
    (
        "SELECT set_config('work_mem', '9MB', true)",
        lambda a, b: leaked(a, b, "SELECT set_config('work_mem', '9MB', true)", "SHOW work_mem") != "9MB",
        FINE,
    ),
    (
        # PgBouncer restores application_name only for a client that sent one when connecting; B did not.
        "SET application_name = 'probe_a'",
        lambda a, b: leaked(a, b, "SET application_name = 'probe_a'", "SHOW application_name") == "probe_a",
        LEAK,
    ),
]


def test_a_tracked_parameter_is_restored_for_a_client_that_set_it_when_connecting(two_connection_proxy):
    with (
        client(two_connection_proxy) as a,
        two_connection_proxy.connect(autocommit=True, prepare_threshold=None, application_name="probe_b") as b,
    ):
        assert leaked(a, b, "SET application_name = 'probe_a'", "SHOW application_name") == "probe_b"


@pytest.mark.parametrize(("statement", "probe", "outcome"), CASES, ids=[c[0] for c in CASES])
def test_pgbouncer_does_with_each_statement_what_the_analysis_says(two_connection_proxy, statement, probe, outcome):
    assert analyse(statement).pgbouncer == outcome
    with client(two_connection_proxy) as a, client(two_connection_proxy) as b:
        assert probe(a, b), f"PgBouncer did not behave as `{outcome}` for {statement}"
