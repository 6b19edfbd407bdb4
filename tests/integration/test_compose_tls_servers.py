"""The compose stack's TLS configuration run by real servers, without Docker: the exact Redis command line of
compose/docker-compose.yml given to Debian's redis-server, and compose/pgbouncer/entrypoint.sh with the file's
arguments given to Debian's pgbouncer (upstream: the session stack's PostgreSQL). Both read the
container-readable copy of the certificates the compose backend mounts. What differs from the containers:
the server versions (Debian's Redis 7.0 and PgBouncer 1.18, the images' 7.4.6 and 1.25.2), and the listen
address (127.0.0.1 here, all interfaces inside a container's own network)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import yaml

from harness.backends.compose_spec import COMPOSE_DIR, COMPOSE_FILE, TLS_MOUNT
from harness.endpoints import PostgresEndpoint, RedisEndpoint, Secret, TlsFiles
from harness.services.certificates import container_copy, ensure_certificates, make_ca, write_ca_bundle
from harness.services.osuser import server_user

pytestmark = pytest.mark.integration

READY_DEADLINE_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def compose_services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """Outside pytest's 0700 temporary root, which the server account (dbunit) could not traverse."""
    root = Path(tempfile.mkdtemp(prefix="dbunit-compose-tls-"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def mounted(scratch) -> TlsFiles:
    """What the compose backend mounts: a world-readable copy of the CA and server certificate made at `up`."""
    files = ensure_certificates(scratch / "tls")
    return container_copy(files, scratch / "compose" / "tls")


@pytest.fixture(scope="module")
def stranger_ca(tmp_path_factory) -> str:
    _, cert = make_ca("a CA the harness never used")
    return str(write_ca_bundle(tmp_path_factory.mktemp("stranger"), cert))


def in_container(args: list[str], mounted: TlsFiles, values: dict[str, str]) -> list[str]:
    """The file's arguments with the mount and the ${VAR:?} references as compose would resolve them."""
    resolved = []
    for arg in args:
        arg = arg.replace(TLS_MOUNT, str(mounted.ca.parent))
        for var, value in values.items():
            if arg.startswith(f"${{{var}:?"):
                arg = value
        resolved.append(arg)
    return resolved


def wait_until(probe, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            probe()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def compose_redis(compose_services, mounted, tmp_path_factory) -> Iterator[RedisEndpoint]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server (apt-get install redis-server)")
    work = tmp_path_factory.mktemp("compose-redis")
    password, port = "compose-redis-pw", free_port()
    command = in_container(compose_services["redis"]["command"], mounted, {"DBUNIT_REDIS_PASSWORD": password})
    assert command[0] == "redis-server"
    # The container's port is 6379 on its own network; here a free one, on loopback only.
    command = [binary, *command[1:], "--tls-port", str(port), "--bind", "127.0.0.1", "--dir", str(work)]
    log = work / "redis.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    endpoint = RedisEndpoint("127.0.0.1", port, Secret(password), tls=True, ca_file=str(mounted.ca))
    try:
        wait_until(lambda: endpoint.client(socket_timeout=2).ping(), process, log)
        yield endpoint
    finally:
        stop(process)


def test_the_compose_redis_command_serves_tls_to_a_verifying_client(compose_redis):
    client = compose_redis.client()
    try:
        assert client.ping()
        assert client.set("compose-tls", "1") and client.get("compose-tls") == b"1"
    finally:
        client.close()


def test_the_compose_redis_refuses_a_plain_client(compose_redis):
    plain = dataclasses.replace(compose_redis, tls=False, ca_file="").client(socket_timeout=5)
    try:
        with pytest.raises(redis.ConnectionError):
            plain.ping()
    finally:
        plain.close()


def test_the_compose_redis_refuses_a_client_with_a_wrong_ca(compose_redis, stranger_ca):
    wrong = dataclasses.replace(compose_redis, ca_file=stranger_ca).client(socket_timeout=5)
    try:
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            wrong.ping()
    finally:
        wrong.close()


def test_the_compose_redis_refuses_a_client_without_the_password(compose_redis):
    anonymous = dataclasses.replace(compose_redis, password=Secret("")).client(socket_timeout=5, password=None)
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()


@pytest.mark.parametrize("command", ["CONFIG GET maxmemory", "SAVE", "BGSAVE", "DEBUG SLEEP 0", "SHUTDOWN"])
def test_the_compose_redis_refuses_the_commands_elasticache_restricts(compose_redis, command):
    client = compose_redis.client()
    try:
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command(*command.split())
        assert client.ping(), f"{command} must not have stopped the server"
    finally:
        client.close()


@pytest.fixture(scope="module")
def compose_pgbouncer(stack, compose_services, mounted, scratch) -> Iterator[PostgresEndpoint]:
    if stack.backend != "embedded":
        pytest.skip("needs the embedded stack's PostgreSQL as the upstream")
    binary = shutil.which("pgbouncer") or next(Path("/usr/sbin").glob("pgbouncer"), None)
    if binary is None:
        pytest.skip("no pgbouncer (apt-get install pgbouncer)")
    user = server_user("dbunit")
    work = scratch / "pgbouncer"
    work.mkdir()
    user.own(work)
    port = free_port()
    args = in_container(compose_services["pgbouncer"]["command"], mounted, {})
    direct = stack.direct
    env = {
        "PATH": f"{Path(binary).parent}:/usr/bin:/bin",
        "PGUSER": direct.user,
        "PGPASSWORD": direct.password.reveal(),
        "PGBOUNCER_UPSTREAM_HOST": direct.host,
        "PGBOUNCER_UPSTREAM_PORT": str(direct.port),
        "PGBOUNCER_PORT": str(port),
        "TMPDIR": str(work),
    }
    log = work / "pgbouncer.log"
    # PgBouncer refuses root, as in the image (USER postgres); loopback only here.
    command = ["/bin/sh", str(COMPOSE_DIR / "pgbouncer" / "entrypoint.sh"), *args, "listen_addr=127.0.0.1"]
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=work, preexec_fn=user.preexec()
        )
    endpoint = dataclasses.replace(direct, port=port, sslmode="verify-full", sslrootcert=str(mounted.ca))

    def probe() -> None:
        with endpoint.connect(connect_timeout=2, autocommit=True, prepare_threshold=None) as conn:
            conn.execute("SELECT 1").fetchone()

    try:
        wait_until(probe, process, log)
        yield endpoint
    finally:
        stop(process)


def test_the_compose_pgbouncer_serves_tls_to_a_verifying_client(compose_pgbouncer):
    with compose_pgbouncer.connect(autocommit=True, prepare_threshold=None) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_compose_pgbouncer_refuses_a_plain_client(compose_pgbouncer):
    plain = dataclasses.replace(compose_pgbouncer, sslmode="disable", sslrootcert="")
    with pytest.raises(psycopg.OperationalError, match="SSL required"):
        plain.connect(connect_timeout=5)


def test_the_compose_pgbouncer_refuses_a_client_with_a_wrong_ca(compose_pgbouncer, stranger_ca):
    wrong = dataclasses.replace(compose_pgbouncer, sslrootcert=stranger_ca)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        wrong.connect(connect_timeout=5)


def test_the_compose_pgbouncer_healthcheck_command_passes_against_it(compose_services, compose_pgbouncer, mounted):
    """The healthcheck's psql line, with the container's port and mount replaced by this server's."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("no psql on this machine")
    test = compose_services["pgbouncer"]["healthcheck"]["test"][1]
    test = test.replace(TLS_MOUNT, str(mounted.ca.parent)).replace("-p 6432", f"-p {compose_pgbouncer.port}")
    env = {
        "PATH": os.environ["PATH"],
        "PGUSER": compose_pgbouncer.user,
        "PGPASSWORD": compose_pgbouncer.password.reveal(),
        "PGDATABASE": compose_pgbouncer.dbname,
    }
    assert subprocess.run(["/bin/sh", "-c", test], env=env, timeout=30).returncode == 0
    wrong_port = test.replace(f"-p {compose_pgbouncer.port}", f"-p {free_port()}")
    assert subprocess.run(["/bin/sh", "-c", wrong_port], env=env, timeout=30, capture_output=True).returncode != 0
