"""The running stack, checked with the same clients a user would point at it."""

import json
import uuid

import psycopg
import pytest

from harness.services.pgbouncer_admin import pools
from harness.sizing import postgres_sizing, redis_sizing

pytestmark = pytest.mark.integration


def test_postgres_is_sized_like_the_instance_class(stack, harness_settings):
    expected = postgres_sizing(harness_settings.db_instance_class)
    with stack.direct.connect() as conn:
        assert int(conn.execute("SHOW max_connections").fetchone()[0]) == expected.max_connections
        shared_buffers = conn.execute(
            "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
        ).fetchone()[0]
        assert shared_buffers == expected.shared_buffers_bytes
        work_mem_kb = conn.execute("SELECT setting::int FROM pg_settings WHERE name = 'work_mem'").fetchone()[0]
        assert work_mem_kb * 1024 == expected.work_mem_bytes


def test_vector_and_pg_stat_statements_are_installed(stack):
    with stack.direct.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        installed = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
        assert {"vector", "pg_stat_statements"} <= installed
        distance = conn.execute("SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector").fetchone()[0]
        assert distance == pytest.approx(1.0)


def test_passwords_are_required(stack):
    params = stack.direct.conninfo_kwargs() | {"password": "wrong"}
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**params, connect_timeout=5)


def test_queries_through_the_proxy_reach_postgres_through_pgbouncer(stack):
    with stack.proxy.connect(autocommit=True, prepare_threshold=None) as conn:
        assert conn.execute("SELECT 41 + 1").fetchone()[0] == 42
    ours = [p for p in pools(stack) if p["database"] == stack.proxy.dbname]
    assert ours, "PgBouncer has no pool for the database the proxy endpoint names"
    assert {p["pool_mode"] for p in ours} == {"transaction"}


def test_redis_is_sized_like_the_cache_node(stack, harness_settings):
    expected = redis_sizing(harness_settings.cache_node_type)
    client = stack.redis.client()
    # CONFIG is one of the commands ElastiCache restricts: read the settings from INFO, as on ElastiCache.
    memory = client.info("memory")
    assert int(memory["maxmemory"]) == expected.maxmemory_bytes
    assert memory["maxmemory_policy"] == "volatile-lru"
    persistence = client.info("persistence")
    assert persistence["aof_enabled"] == 0
    before = persistence["rdb_last_save_time"]
    client.set("tests:no-snapshot", "1")
    assert client.info("persistence")["rdb_last_save_time"] == before, "a write must not trigger a snapshot"


def test_s3_put_and_get_on_the_exports_bucket(stack):
    s3 = stack.aws.client("s3")
    key = f"tests/{uuid.uuid4()}.json"
    s3.put_object(Bucket=stack.resources.exports_bucket, Key=key, Body=b'{"ok": true}')
    try:
        body = s3.get_object(Bucket=stack.resources.exports_bucket, Key=key)["Body"].read()
        assert json.loads(body) == {"ok": True}
    finally:
        s3.delete_object(Bucket=stack.resources.exports_bucket, Key=key)


def test_db_credentials_secret_opens_a_connection_through_the_proxy(stack):
    sm = stack.aws.client("secretsmanager")
    secret = json.loads(sm.get_secret_value(SecretId=stack.resources.db_secret_id)["SecretString"])
    assert (secret["host"], secret["port"]) == (stack.proxy.host, stack.proxy.port)
    with psycopg.connect(
        host=secret["host"],
        port=secret["port"],
        user=secret["username"],
        password=secret["password"],
        dbname=secret["dbname"],
        prepare_threshold=None,
        connect_timeout=5,
        **stack.proxy.tls_params(),
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == secret["username"]


def test_kms_key_exists(stack):
    kms = stack.aws.client("kms")
    assert kms.describe_key(KeyId=stack.resources.kms_key_id)["KeyMetadata"]["KeyId"] == stack.resources.kms_key_id


def test_everything_listens_on_loopback_only(stack):
    import psutil

    ports = {stack.direct.port, stack.proxy.port, stack.redis.port, int(stack.aws.url.rsplit(":", 1)[1])}
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]
    assert {c.laddr.port for c in listening} == ports
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
