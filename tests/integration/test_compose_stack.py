"""The compose backend against a real Docker engine: the unit as containers, built, started, sized and removed.

Skipped, with the reason, when no engine answers (`.ci/docker-engine` starts one). The stack runs beside any
other: its own state directory, project and free ports, through the CLI a user runs.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess

import psycopg
import pytest
import redis

from harness.endpoints import StackEndpoints

pytestmark = [pytest.mark.integration, pytest.mark.compose]


def docker_lines(*args: str) -> list[str]:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def endpoints(compose_stack) -> StackEndpoints:
    return compose_stack.endpoints()


def test_up_builds_the_images_then_waits_for_every_healthcheck(compose_stack):
    assert "compose: images ready in " in compose_stack.last_up
    assert "compose: every service healthy in " in compose_stack.last_up
    ports = docker_lines(
        "ps", "--filter", f"label=com.docker.compose.project={compose_stack.project}", "--format", "{{.Ports}}"
    )
    assert len(ports) == 4
    for published in ports:
        assert published.startswith("127.0.0.1:"), published


def test_the_proxy_requires_tls_and_verifies_against_the_harness_ca(endpoints):
    with endpoints.proxy.connect() as conn:
        assert conn.info.pgconn.ssl_in_use
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone() is not None
    plain = dataclasses.replace(endpoints.proxy, sslmode="disable", sslrootcert="")
    with pytest.raises(psycopg.OperationalError):
        plain.connect(connect_timeout=5).close()


def test_redis_answers_over_tls_only(endpoints):
    client = endpoints.redis.client()
    assert client.ping()
    plain = redis.Redis(
        host=endpoints.redis.host,
        port=endpoints.redis.port,
        password=endpoints.redis.password.reveal(),
        socket_timeout=5,
    )
    with pytest.raises(redis.RedisError):
        plain.ping()


def test_the_bucket_secret_and_key_exist_on_the_emulator(endpoints):
    s3 = endpoints.aws.client("s3")
    assert endpoints.resources.exports_bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    secret = endpoints.aws.client("secretsmanager").get_secret_value(SecretId=endpoints.resources.db_secret_id)
    assert json.loads(secret["SecretString"])["port"] == endpoints.proxy.port
    assert endpoints.aws.client("kms").describe_key(KeyId=endpoints.resources.kms_key_id)["KeyMetadata"]["Enabled"]


def test_status_reads_the_instance_sizes_back_from_the_containers_kernels(compose_stack):
    done = compose_stack.harness("status", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    containers = json.loads(done.stdout)["facts"]["containers"]
    # db.t3.micro: 1 GiB, 2 vCPUs; cache.t3.micro: 0.5 GiB, 2 vCPUs; as the engine was told and the kernel holds.
    assert containers["postgres"]["memory_bytes"] == containers["postgres"]["engine_memory_bytes"] == 2**30
    assert containers["postgres"]["vcpus"] == containers["postgres"]["engine_vcpus"] == 2.0
    assert containers["redis"]["memory_bytes"] == 2**29
    assert containers["redis"]["vcpus"] == 2.0
    table = compose_stack.harness("status", timeout=120).stdout
    assert "kernel (" in table and "1024 MiB, 2 vCPU" in table


def test_seed_and_the_vector_search_work(compose_stack, endpoints):
    done = compose_stack.harness("seed", "--profile", "ci", "--quiet", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    # A new session, which takes the search_path the seed set on the database (the pool's older server
    # connections keep theirs, on either backend).
    with endpoints.direct.connect() as conn:
        nearest = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM documents "
            "ORDER BY embedding <=> (SELECT embedding FROM documents LIMIT 1) LIMIT 10) AS hits"
        ).fetchone()
    assert nearest == (10,)


def test_a_restart_keeps_the_database_and_the_emulators_objects(compose_stack, endpoints):
    with endpoints.direct.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS compose_restart (note text)")
        conn.execute("INSERT INTO compose_restart VALUES ('kept')")
    endpoints.aws.client("s3").put_object(Bucket=endpoints.resources.exports_bucket, Key="restart.txt", Body=b"kept")
    down = compose_stack.harness("down", timeout=300)
    assert down.returncode == 0, down.stderr
    assert "data volumes kept" in down.stderr + down.stdout
    again = compose_stack.up()
    with again.direct.connect() as conn:
        assert conn.execute("SELECT note FROM compose_restart").fetchall() == [("kept",)]
    body = again.aws.client("s3").get_object(Bucket=again.resources.exports_bucket, Key="restart.txt")["Body"].read()
    assert body == b"kept"


def test_down_purge_leaves_no_container_network_or_volume(compose_stack):
    project = compose_stack.project
    done = compose_stack.harness("down", "--purge", timeout=300)
    assert done.returncode == 0, done.stderr
    label = f"label=com.docker.compose.project={project}"
    assert docker_lines("ps", "-a", "--filter", label, "--format", "{{.Names}}") == []
    assert docker_lines("network", "ls", "--filter", label, "--format", "{{.Name}}") == []
    assert docker_lines("volume", "ls", "--filter", label, "--format", "{{.Name}}") == []
    # Anonymous volumes carry no project label: none may be new and left dangling either.
    dangling = docker_lines("volume", "ls", "--filter", "dangling=true", "--format", "{{.Name}}")
    assert set(dangling) - compose_stack.volumes_before == set()
