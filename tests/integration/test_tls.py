"""TLS in transit as the document's "Encryption in transit verified" asks: the proxy and Redis require it,
refuse plain clients and clients that do not trust their CA, and every client the harness builds verifies."""

import dataclasses

import psycopg
import pytest
import redis

from harness.services.certificates import make_ca, write_ca_bundle
from harness.services.pgbouncer_admin import clients

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_required(stack):
    tls = stack.facts.get("tls", {})
    if stack.backend != "embedded" or tls.get("mode") != "required":
        pytest.skip(f"needs the embedded stack with tls = required (this one: {stack.backend}, {tls.get('mode')})")
    return tls


@pytest.fixture(scope="module")
def stranger_ca(tmp_path_factory):
    """A CA bundle the servers' certificate was not issued by."""
    _, cert = make_ca("a CA the harness never used")
    return str(write_ca_bundle(tmp_path_factory.mktemp("stranger-ca"), cert))


def test_the_proxy_endpoint_verifies_the_certificate_and_the_connection_is_encrypted(stack, tls_required):
    assert stack.proxy.sslmode == "verify-full" and stack.proxy.sslrootcert
    name = "tls-test-client"
    with stack.proxy.connect(autocommit=True, prepare_threshold=None, application_name=name) as conn:
        assert conn.pgconn.ssl_in_use
        # What the proxy itself saw: the protocol it negotiated with this client.
        seen = [c["tls"] for c in clients(stack) if c.get("application_name") == name]
        assert seen and seen[0].split("/")[0] in ("TLSv1.2", "TLSv1.3"), seen


def test_a_plain_client_is_refused_by_the_proxy(stack, tls_required):
    plain = dataclasses.replace(stack.proxy, sslmode="disable", sslrootcert="")
    with pytest.raises(psycopg.OperationalError, match="SSL required"):
        plain.connect(connect_timeout=5)


def test_a_client_with_a_wrong_ca_is_refused_by_the_proxy(stack, tls_required, stranger_ca):
    wrong = dataclasses.replace(stack.proxy, sslrootcert=stranger_ca)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        wrong.connect(connect_timeout=5)


def test_the_direct_endpoint_is_plain_and_says_so(stack, tls_required):
    assert stack.direct.sslmode == "disable"
    assert "NOT EMULATED" in tls_required["direct"]
    with stack.direct.connect() as conn:
        assert not conn.pgconn.ssl_in_use


def test_redis_speaks_tls_and_verifies_the_certificate(stack, tls_required):
    assert stack.redis.tls and stack.redis.ca_file
    client = stack.redis.client()
    try:
        assert client.ping()
        assert client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "required"
    finally:
        client.close()


def test_a_plain_client_is_refused_by_redis(stack, tls_required):
    plain = dataclasses.replace(stack.redis, tls=False, ca_file="").client(socket_timeout=5)
    try:
        with pytest.raises(redis.ConnectionError):
            plain.ping()
    finally:
        plain.close()


def test_a_client_with_a_wrong_ca_is_refused_by_redis(stack, tls_required, stranger_ca):
    wrong = dataclasses.replace(stack.redis, ca_file=stranger_ca).client(socket_timeout=5)
    try:
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            wrong.ping()
    finally:
        wrong.close()


def test_harness_env_gives_verify_full_urls_and_the_ca_bundle(stack, tls_required):
    env = stack.environment()
    assert "sslmode=verify-full" in env["DATABASE_URL"]
    assert f"sslrootcert={stack.proxy.sslrootcert}" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("rediss://")
    assert env["HARNESS_CA_BUNDLE"] == stack.proxy.sslrootcert
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5, prepare_threshold=None) as conn:
        assert conn.pgconn.ssl_in_use
