"""The compose backend: the unit as Docker containers from compose/docker-compose.yml.

`up` builds the images (compose/*/Dockerfile, through the engine's build cache: a warm build takes seconds),
runs `docker compose up --wait` through testcontainers' DockerCompose (so a CLI user and a pytest session
start and stop the stack the same way), waits on the services' healthchecks, creates the same bucket, secret
and KMS key as the embedded stack, and writes the same endpoint file. `down` removes the containers and the
network and keeps the named data volumes, so the next `up` finds the data; `down --purge` drops them too.

`status` reads back what the engine applied: each container's limits from `docker inspect` and what its
kernel holds, from the container's own cgroup files.

Passwords, ports and the project name go to `<state>/compose/compose.env` (mode 0600), passed with
--env-file. Compose lets the shell's environment override that file, so the endpoints are built from
the values compose will actually use.

TLS as on the embedded stack (`tls = required | optional | off`): the CA and server certificate made at
`up` under `<state>/tls`, a container-readable copy mounted into PgBouncer and Redis, endpoints that
verify against the CA, and, once compose reports every service healthy, the harness's own probes from the
host, which verify the certificate and its name as every client will.

This module is the lifecycle; the docker CLI, its errors and the image build are compose_engine.py, the
limits read back compose_limits.py, the compose file itself compose_spec.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import yaml

from harness.backends import compose_faults
from harness.backends.base import Backend, Reporter, ServiceStatus, StackStatus
from harness.backends.compose_engine import (
    COMPOSE_TIMEOUT_S,
    build_images,
    compose_failure,
    compose_run,
    host_ca_bundle,
    indented_tail,
    require_docker,
)
from harness.backends.compose_lambda import ComposeLambda
from harness.backends.compose_limits import container_sizing
from harness.backends.compose_spec import (
    AWS_CONTEXT_VAR,
    AWS_DOCKERFILE_VAR,
    COMPOSE_CREDITS_NOT_EMULATED,
    COMPOSE_FILE,
    DATABASE_VAR,
    DB_PASSWORD_VAR,
    IMAGES,
    MASTER_USER_VAR,
    PIP_CA_VAR,
    PORT_VARS,
    PROJECT_NAME,
    REDIS_PASSWORD_VAR,
    REGION_VAR,
    TLS_DIR_VAR,
    credit_override,
    override,
)
from harness.backends.probes import forget_endpoints, probe_stack, refuse_foreign_stack, served_versions
from harness.config import Settings, shipped_unit
from harness.endpoints import (
    AwsEndpoint,
    PostgresEndpoint,
    RedisEndpoint,
    Secret,
    StackEndpoints,
    TlsFiles,
    load_endpoints,
    save_endpoints,
    write_private_file,
)
from harness.paths import COMPOSE_DIR
from harness.services import aws_persist
from harness.services.aws import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY, checkpoint, create_unit_resources
from harness.services.certificates import container_copy, ensure_certificates, tls_facts
from harness.services.lambda_server import NAME as LAMBDA_RUNTIME
from harness.services.pgbouncer import client_tls_params
from harness.services.postgres import server_facts
from harness.services.process import ServiceError, ensure_port_free, port_is_free
from harness.services.redis import uses_tls
from harness.sizing import unit_sizing

ENV_FILE = "compose.env"
OVERRIDE_FILE = "override.yml"
CREDITS_OVERRIDE_FILE = "credits.override.yml"
# The same directory as the embedded stack's: one CA per state directory, whichever backend runs there.
TLS_DIR = "tls"
CONTAINER_TLS_DIR = "tls"
DIRECT_PLAIN = (
    "plain TCP on 127.0.0.1 only, as on the embedded stack (on RDS, rds.force_ssl=1 requires TLS here too): "
    "NOT EMULATED"
)
# The probe rows' services, as compose names them.
SERVICE_OF_ROW = {"postgres (direct)": "postgres", "proxy": "pgbouncer", "redis": "redis", "aws": "aws"}
HOST = "127.0.0.1"
# What the compose stack does not do that the embedded one does, and why: status, the endpoint facts (and
# so every results file's run facts) and the drills say so, rather than leave a figure silently missing.
NOT_EMULATED_BACKUPS = (
    "its PostgreSQL archives no WAL and the harness takes no base backups of it (the embedded server's "
    "archive_command feeds the harness's WAL archive in the emulator's S3): `harness backup`, the checklist's "
    "backup items and the restore half of the database drill run on the embedded stack only"
)
# The Lambda runtime as the drills name it, as on the embedded stack.
LAMBDA_SERVICE = "lambda"
# PgBouncer's answer while it waits server_login_retry (15 s by default) after its server failed a login.
PROXY_LOGIN_RETRY = "server_login_retry"
PROXY_LOGIN_RETRY_DEADLINE_S = 30.0


def aws_build_paths() -> dict[str, str]:
    """The AWS image's build context and Dockerfile, absolute, from wherever this harness is installed."""
    return {
        AWS_CONTEXT_VAR: str(Path(aws_persist.__file__).resolve().parent),
        AWS_DOCKERFILE_VAR: str((COMPOSE_DIR / "aws" / "Dockerfile").resolve()),
    }


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value
    return values


class ComposeBackend(Backend):
    name = "compose"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.state_dir
        self.work_dir = self.state / "compose"
        self.env_path = self.work_dir / ENV_FILE
        self.sizing = unit_sizing(settings.db_instance_class, settings.cache_node_type, settings.unit.lambda_memory_mb)
        # One project per state directory, as the embedded stack keeps one set of processes per state.
        digest = hashlib.sha1(str(self.state).encode()).hexdigest()[:10]
        self.project = f"{PROJECT_NAME}-{digest}"

    # -- files handed to docker compose ------------------------------------------------------------

    def _private_work_dir(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # It holds the env file and the containers' world-readable copy of the server key.
        os.chmod(self.work_dir, 0o700)

    def _tls_files(self) -> TlsFiles | None:
        """The certificates clients verify against (host paths), kept while valid; None under `tls = off`."""
        return None if self.settings.tls == "off" else ensure_certificates(self.state / TLS_DIR)

    def _mount_dir(self, files: TlsFiles | None) -> Path:
        """The directory compose mounts into PgBouncer and Redis (empty, and unused, under `tls = off`)."""
        directory = self.work_dir / CONTAINER_TLS_DIR
        if files is None:
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        return container_copy(files, directory).ca.parent

    def _write_env_file(self, tls_dir: Path) -> dict[str, str]:
        previous = read_env_file(self.env_path)
        s = self.settings
        values = {
            "COMPOSE_PROJECT_NAME": self.project,
            TLS_DIR_VAR: str(tls_dir),
            **{var: str(getattr(s, setting)) for setting, var in PORT_VARS.items()},
            DATABASE_VAR: s.database,
            MASTER_USER_VAR: s.master_user,
            REGION_VAR: s.region,
            PIP_CA_VAR: host_ca_bundle(),
            **aws_build_paths(),
            # Kept across `up`s: PostgreSQL sets its password once, when it initialises its volume.
            DB_PASSWORD_VAR: previous.get(DB_PASSWORD_VAR) or secrets.token_urlsafe(24),
            REDIS_PASSWORD_VAR: previous.get(REDIS_PASSWORD_VAR) or secrets.token_urlsafe(24),
        }
        write_private_file(
            self.env_path,
            "# Written by `harness up --backend compose` for docker compose --env-file; holds passwords.\n"
            + "".join(f"{key}={value}\n" for key, value in values.items()),
        )
        return values

    def compose_files(self) -> list[Path]:
        """The committed file, plus an override when the profile or the TLS mode is not the default."""
        files = [COMPOSE_FILE]
        s = self.settings
        if (s.db_instance_class, s.cache_node_type, s.tls) != (
            shipped_unit().db_instance_class,
            shipped_unit().cache_node_type,
            Settings.tls,
        ):
            path = self.work_dir / OVERRIDE_FILE
            self._private_work_dir()
            path.write_text(
                f"# Written by the harness: sizing of {self.sizing.postgres.instance_class} / "
                f"{self.sizing.redis.node_type}, tls = {s.tls}.\n"
                + yaml.safe_dump(override(self.sizing, s.tls), sort_keys=False, width=1000)
            )
            files.append(path)
        credits = credit_override(self.settings)
        if credits is not None:
            path = self.work_dir / CREDITS_OVERRIDE_FILE
            self._private_work_dir()
            path.write_text(
                f"# Written by the harness: cpu_credits = {self.settings.cpu_credits} caps.\n"
                + yaml.safe_dump(credits, sort_keys=False)
            )
            files.append(path)
        return files

    def credit_facts(self) -> dict[str, Any]:
        """What status and reports say about credits on this backend."""
        mode = self.settings.cpu_credits
        if mode == "off":
            return {"mode": mode, "enforced": False, "detail": "cpu_credits = off: caps not moved"}
        return {
            "mode": mode,
            "enforced": False,
            "detail": f"credits NOT enforced as the embedded stack does: {COMPOSE_CREDITS_NOT_EMULATED}",
        }

    def _compose(self, docker: str) -> Any:
        from testcontainers.compose import DockerCompose

        # testcontainers logs a failed command's output at ERROR, which Python would print as stray lines;
        # this backend reports failures itself, with that output.
        quiet = logging.getLogger("testcontainers")
        if not quiet.handlers:
            quiet.addHandler(logging.NullHandler())
        if not COMPOSE_FILE.exists():
            raise ServiceError(f"{COMPOSE_FILE} is missing: the compose backend runs from a dbunit-harness checkout")
        return DockerCompose(
            context=str(COMPOSE_DIR),
            compose_file_name=[str(path) for path in self.compose_files()],
            env_file=str(self.env_path),
            docker_command_path=docker,
            wait=True,
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def _is_running(self, compose: Any) -> bool:
        try:
            return bool(compose.get_containers())
        except (subprocess.CalledProcessError, ValueError):
            return False

    def _remove(self, compose: Any, report: Reporter, volumes: bool = False) -> None:
        args = ["down", "--remove-orphans", *(["--volumes"] if volumes else [])]
        done = compose_run(compose, *args)
        if done.returncode != 0:
            raise ServiceError(
                f"`docker compose {' '.join(args)}` failed (exit {done.returncode}):\n{indented_tail(done.stderr)}"
            )
        # Compose lets the shell's COMPOSE_PROJECT_NAME win over the env file, and so does this line.
        project = os.environ.get("COMPOSE_PROJECT_NAME", self.project)
        kept = "and its data volumes" if volumes else "(its data volumes kept: `harness down --purge` drops them)"
        report(f"compose: removed the containers and network of project {project} {kept}")

    def _endpoints(
        self, values: dict[str, str], tls: TlsFiles | None
    ) -> tuple[PostgresEndpoint, PostgresEndpoint, RedisEndpoint, AwsEndpoint]:
        def port(setting: str) -> int:
            return int(values[PORT_VARS[setting]])

        db_password = Secret(values[DB_PASSWORD_VAR])
        user, database = values[MASTER_USER_VAR], values[DATABASE_VAR]
        redis_password = Secret(values[REDIS_PASSWORD_VAR])
        mode = self.settings.tls
        return (
            PostgresEndpoint(HOST, port("proxy_port"), user, db_password, database, **client_tls_params(mode, tls)),
            PostgresEndpoint(HOST, port("postgres_port"), user, db_password, database, sslmode="disable"),
            RedisEndpoint(HOST, port("redis_port"), redis_password, tls=True, ca_file=str(tls.ca))
            if tls is not None and uses_tls(mode, tls)
            else RedisEndpoint(HOST, port("redis_port"), redis_password),
            AwsEndpoint(
                f"http://{HOST}:{port('aws_port')}",
                self.settings.region,
                EMULATOR_ACCESS_KEY,
                Secret(EMULATOR_SECRET_KEY),
            ),
        )

    def up(self, report: Reporter) -> StackEndpoints:
        refuse_foreign_stack(self.state, self.name)
        docker = require_docker()
        self._private_work_dir()
        tls = self._tls_files()
        written = self._write_env_file(self._mount_dir(tls))
        values = {key: os.environ.get(key, value) for key, value in written.items()}
        compose = self._compose(docker)
        started_here = not self._is_running(compose)
        if started_here:
            # Compose would fail on a busy port with a long trace; say which setting to change instead.
            for setting, var in PORT_VARS.items():
                ensure_port_free(int(values[var]), f"the compose stack's {setting.removesuffix('_port')}", setting)
            self._lambda().check_port()
            build_images(compose, report, docker)
        # On a running stack (a service killed by a drill, say) `up` starts what is stopped and replaces
        # nothing: a tag another state directory's build moved would otherwise make compose recreate every
        # container, and cut the clients of the services that never went down.
        up = ["up", "--wait"] if started_here else ["up", "--wait", "--no-recreate"]
        report(f"compose: docker compose {' '.join(up)}, project {values['COMPOSE_PROJECT_NAME']}")
        began = time.monotonic()
        try:
            if started_here:
                compose.start()
            else:
                # As long as compose's own healthchecks may take (60 retries 2 s apart), and then some.
                done = compose_run(compose, *up, timeout_s=2 * COMPOSE_TIMEOUT_S)
                if done.returncode != 0:
                    raise subprocess.CalledProcessError(done.returncode, up, done.stdout, done.stderr)
        except subprocess.CalledProcessError as exc:
            failure = compose_failure(f"docker compose {' '.join(up)}", compose, exc)
            if started_here:
                self._remove(compose, report)
            raise failure from None
        report(f"compose: every service healthy in {time.monotonic() - began:.1f} s")
        proxy, direct, redis, aws = self._endpoints(values, tls)
        try:
            resources = create_unit_resources(aws, proxy)
            # On disk before `up` returns, as the embedded stack: a killed container keeps them.
            checkpoint(aws)
        except Exception as exc:
            if started_here:
                self._remove(compose, report)
            raise ServiceError(
                f"the AWS emulator is healthy but creating the bucket, secret and KMS key failed: {exc}"
            ) from None
        report(f"aws: bucket {resources.exports_bucket}, secret {resources.db_secret_id} and KMS key ready")
        try:
            postgres_facts = server_facts(direct, self.sizing.postgres)
        except psycopg.Error as exc:
            if started_here:
                self._remove(compose, report)
            raise ServiceError(f"PostgreSQL is healthy but does not answer from the host: {exc}") from None
        runtime = self._lambda()
        try:
            lambda_runtime = runtime.start(aws, values, report)
        except ServiceError:
            if started_here:
                runtime.stop(report)
                self._remove(compose, report)
            raise
        endpoints = StackEndpoints(
            backend=self.name,
            proxy=proxy,
            direct=direct,
            redis=redis,
            aws=replace(aws, lambda_url=lambda_runtime.url),
            resources=resources,
            facts={
                "project": values["COMPOSE_PROJECT_NAME"],
                "compose_files": list(compose.compose_file_name),
                "images": IMAGES,
                "instance_class": self.sizing.postgres.instance_class,
                "node_type": self.sizing.redis.node_type,
                # As the embedded stack reports them: scenarios size their load from these.
                "postgres": postgres_facts,
                "redis": {
                    "node_type": self.sizing.redis.node_type,
                    "vcpus": self.sizing.redis.vcpus,
                    "memory_bytes": self.sizing.redis.memory_bytes,
                },
                "credits": self.credit_facts(),
                "tls": tls_facts(self.settings.tls, tls, DIRECT_PLAIN),
                "state_dir": str(self.state),
                "not_emulated": self.not_emulated(),
                "lambda": lambda_runtime.facts(),
            },
        )
        # Compose's healthchecks ran inside the containers; these run from the host, through the published
        # ports, with the endpoints every client gets (TLS verified against the CA, names checked).
        rows = self._host_probe_rows(endpoints)
        failed = [row for row in rows if not row.healthy]
        if failed:
            if started_here:
                runtime.stop(report)
                self._remove(compose, report)
            raise ServiceError(
                "compose reports every service healthy, but from the host "
                + "; ".join(f"{row.name} at {row.endpoint}: {row.detail}" for row in failed)
            )
        endpoints.facts.update(served_versions(endpoints, rows))
        save_endpoints(self.state, endpoints)
        return endpoints

    @staticmethod
    def _host_probe_rows(endpoints: StackEndpoints) -> list[ServiceStatus]:
        """The probes from the host. A PgBouncer whose server went away (a killed database, a
        drill) refuses logins for server_login_retry before it tries the server again: that answer alone is
        waited out, up to a deadline; any other failure is one."""
        deadline = time.monotonic() + PROXY_LOGIN_RETRY_DEADLINE_S
        while True:
            rows = probe_stack(endpoints)
            failed = [row for row in rows if not row.healthy]
            waiting = all(PROXY_LOGIN_RETRY in row.detail for row in failed)
            if not failed or not waiting or time.monotonic() > deadline:
                return rows
            time.sleep(0.5)

    def down(self, report: Reporter, purge: bool = False) -> None:
        if self.env_path.exists():
            docker = require_docker()
            self._lambda().stop(report)
            self._remove(self._compose(docker), report, volumes=purge)
        else:
            report(f"compose: nothing was started from {self.state}")
        forget_endpoints(self.state, self.name, report)
        if purge and self.work_dir.exists():
            shutil.rmtree(self.work_dir)
            report(f"removed {self.work_dir}")

    # -- fault drills --------------------------------------------------------------------------------

    @staticmethod
    def services() -> tuple[str, ...]:
        """What the drills may kill and restart: the services compose starts (not those under a profile, the
        Lambda image's), and the Lambda runtime the harness runs beside them."""
        spec = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
        return (*(name for name, service in spec.items() if not service.get("profiles")), LAMBDA_SERVICE)

    def _known(self, service: str) -> None:
        if service not in self.services():
            raise ServiceError(f"unknown service {service!r}; the compose stack has {', '.join(self.services())}")

    def can_restart(self, service: str) -> bool:
        return service in self.services()

    @staticmethod
    def not_emulated() -> dict[str, str]:
        """What this stack does not emulate, and why."""
        return {"backups": NOT_EMULATED_BACKUPS}

    def kill(self, service: str, report: Reporter) -> None:
        """SIGKILL the service's main process (a container's PID 1, or the Lambda runtime's process on the host);
        `up()` starts it again (a container on its volume)."""
        self._known(service)
        if service == LAMBDA_SERVICE:
            self._kill_lambda_runtime(report)
            return
        docker = require_docker()
        compose_faults.kill(self._compose(docker), docker, service, report)

    def _kill_lambda_runtime(self, report: Reporter) -> None:
        runtime = self._lambda()
        record = runtime.pids.read(LAMBDA_RUNTIME)
        if record is None or not record.is_alive():
            raise ServiceError("lambda is not running; start the stack with `harness up --backend compose`")
        os.kill(record.pid, signal.SIGKILL)
        deadline = time.monotonic() + compose_faults.STOPPED_DEADLINE_S
        while record.is_alive() or not port_is_free(self.settings.lambda_port):
            if time.monotonic() > deadline:
                raise ServiceError(f"the Lambda runtime (PID {record.pid}) or its port outlived SIGKILL")
            time.sleep(compose_faults.POLL_S)
        # Its execution environments die with it, as the embedded runtime's worker processes do.
        runtime.remove_containers(report)
        report(f"lambda: killed (SIGKILL to the runtime, PID {record.pid})")

    def restart(self, service: str, report: Reporter) -> None:
        """Stop one service and start it again on the same container and volume (a fault drill)."""
        self._known(service)
        if service == LAMBDA_SERVICE:
            began = time.monotonic()
            self._lambda().stop(report)
            self.up(report)
            report(f"lambda: restarted in {time.monotonic() - began:.1f} s")
            return
        docker = require_docker()
        compose_faults.restart(self._compose(docker), docker, service, report)

    def endpoints(self) -> StackEndpoints | None:
        endpoints = load_endpoints(self.state)
        return endpoints if endpoints is not None and endpoints.backend == self.name else None

    def container_sizing(self) -> dict[str, dict[str, Any]]:
        """Per service: the limits the engine was given and what the container's kernel holds."""
        return container_sizing(self._compose)

    def status(self) -> StackStatus:
        endpoints = self.endpoints()
        facts: dict[str, Any] = {"state_dir": str(self.state)}
        if endpoints is None:
            return StackStatus(self.name, [], {**facts, "note": "the compose stack was not started from here"})
        containers = self.container_sizing()
        facts.update(
            project=endpoints.facts.get("project"),
            tls=endpoints.facts.get("tls"),
            containers=containers,
            not_emulated=self.not_emulated(),
        )
        rows = [self._with_sizing(row, containers) for row in probe_stack(endpoints)]
        lambda_row, facts["lambda"] = self._lambda().status(endpoints.aws)
        return StackStatus(self.name, [*rows, lambda_row], facts)

    def _lambda(self) -> ComposeLambda:
        # Compose lets the shell's COMPOSE_PROJECT_NAME win over the env file, and so does the runtime's label.
        return ComposeLambda(self.settings, self.work_dir, os.environ.get("COMPOSE_PROJECT_NAME", self.project))

    @staticmethod
    def _with_sizing(row: ServiceStatus, containers: dict[str, dict[str, Any]]) -> ServiceStatus:
        held = containers.get(SERVICE_OF_ROW.get(row.name, ""))
        if held is None:
            return row
        memory = "no memory limit" if held["memory_bytes"] is None else f"{held['memory_bytes'] / 2**20:g} MiB"
        cpus = "no CPU limit" if held["vcpus"] is None else f"{held['vcpus']:g} vCPU"
        return replace(row, sizing=f"kernel ({held['cgroup']}): {memory}, {cpus}")
