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

from gdpr_common.resources import bounded_connection_class

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


def test_a_bounded_request_fails_within_its_bound_in_a_blackhole(stack):
    with FaultProxy(stack.proxy.host, stack.proxy.port) as fault:
        through = dataclasses.replace(stack.proxy, port=fault.port)
        conn = through.connect(autocommit=True, connect_timeout=5, request_timeout_s=1.0)
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        fault.blackhole(6)
        began = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="client request timeout"):
            conn.execute("SELECT 1")
        assert time.monotonic() - began < 4
        assert conn.closed


def test_a_gdpr_functions_held_connection_fails_within_its_request_timeout_in_a_blackhole(stack):
    """A warm Lambda environment's connection: without the bound it would wait out the Lambda Timeout."""
    with FaultProxy(stack.proxy.host, stack.proxy.port) as fault:
        params = {**dataclasses.replace(stack.proxy, port=fault.port).conninfo_kwargs(), "connect_timeout": 5}
        conn = bounded_connection_class(1.0).connect(autocommit=True, prepare_threshold=None, **params)
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        fault.blackhole(6)
        began = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="DB_REQUEST_TIMEOUT_S"):
            conn.execute("SELECT 1")
        assert time.monotonic() - began < 4
        assert conn.closed
