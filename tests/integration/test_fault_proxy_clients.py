"""The clients the harness ships, through the fault proxy in front of the real proxy and Redis: TLS with
full verification passes through it, and in a blackhole a bounded request fails within its bound while
the connection is closed (a proxy ACKs the bytes, so nothing at the TCP level would end the wait)."""

import dataclasses
import sys
import time
from pathlib import Path

import psycopg
import pytest

from harness.services.fault_proxy import FaultProxy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions" / "common"))

from gdpr_common.resources import bounded_connection_class as gdpr_bounded_connection_class

pytestmark = pytest.mark.integration


def test_verify_full_tls_passes_through_the_fault_proxy(stack):
    with (
        FaultProxy(stack.proxy.host, stack.proxy.port) as pg_fault,
        FaultProxy(stack.redis.host, stack.redis.port) as r,
    ):
        through = dataclasses.replace(stack.proxy, port=pg_fault.port)
        with through.connect(autocommit=True, connect_timeout=5, request_timeout_s=10) as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
            assert conn.pgconn.ssl_in_use == bool(stack.proxy.sslmode and stack.proxy.sslmode != "disable")
        with dataclasses.replace(stack.redis, port=r.port).client() as redis:
            assert redis.ping()


def _harness_client(endpoint):
    return endpoint.connect(autocommit=True, connect_timeout=5, request_timeout_s=1.0)


def _gdpr_function_client(endpoint):
    # A warm Lambda environment's held connection: without its bound it would wait out the Lambda Timeout.
    params = {**endpoint.conninfo_kwargs(), "connect_timeout": 5}
    return gdpr_bounded_connection_class(1.0).connect(autocommit=True, prepare_threshold=None, **params)


@pytest.mark.parametrize(
    ("connect", "message"),
    [(_harness_client, "client request timeout"), (_gdpr_function_client, "DB_REQUEST_TIMEOUT_S")],
    ids=["harness", "gdpr-function"],
)
def test_a_bounded_request_fails_within_its_bound_in_a_blackhole(stack, connect, message):
    with FaultProxy(stack.proxy.host, stack.proxy.port) as fault:
        conn = connect(dataclasses.replace(stack.proxy, port=fault.port))
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        fault.blackhole(6)
        began = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match=message):
            conn.execute("SELECT 1")
        assert time.monotonic() - began < 4
        assert conn.closed
