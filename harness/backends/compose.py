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
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import ssl
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import yaml

from harness.backends.base import Backend, Reporter, ServiceStatus, StackStatus
from harness.backends.compose_lambda import ComposeLambda
from harness.backends.compose_spec import (
    COMPOSE_CREDITS_NOT_EMULATED,
    COMPOSE_FILE,
    DATABASE_VAR,
    DB_PASSWORD_VAR,
    DEFAULT_PIP_CA,
    IMAGES,
    LAMBDA_PROFILE,
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
from harness.services.aws import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY, checkpoint, create_unit_resources
from harness.services.certificates import container_copy, ensure_certificates, tls_facts
from harness.services.pgbouncer import client_tls_params
from harness.services.postgres import server_facts
from harness.services.process import ServiceError, ensure_port_free
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
NO_DOCKER_HINT = "or use --backend embedded"
DOCKER_TIMEOUT_S = 20
# A cold build installs Debian packages and downloads wheels; a warm one only checks the cache.
BUILD_TIMEOUT_S = 1800
# The probe rows' services, as compose names them.
SERVICE_OF_ROW = {"postgres (direct)": "postgres", "proxy": "pgbouncer", "redis": "redis", "aws": "aws"}
# What a container's kernel holds, read inside it: cgroup v2 files, else v1's (the engine host's choice).
CGROUP_READ = (
    "if [ -f /sys/fs/cgroup/memory.max ]; then "
    "echo v2 $(cat /sys/fs/cgroup/memory.max) $(cat /sys/fs/cgroup/cpu.max); else "
    "echo v1 $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) "
    "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); fi"
)
HOST = "127.0.0.1"


def _first_line(text: str | bytes | None) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else ""


def _tail(text: str | bytes | None, lines: int = 30) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    kept = (text or "").rstrip().splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in kept)


def _docker(docker: str, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [docker, *args], capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(
            f"`docker {' '.join(args)}` did not answer within {DOCKER_TIMEOUT_S} s; check the Docker engine "
            f"(DOCKER_HOST, docker context), {NO_DOCKER_HINT}"
        ) from None
    except OSError as exc:
        raise ServiceError(f"cannot run {docker}: {exc}; reinstall Docker, {NO_DOCKER_HINT}") from None


def require_docker() -> str:
    """The docker CLI's path once an engine and the compose plugin answer; otherwise one clear line."""
    docker = shutil.which("docker")
    if docker is None:
        raise ServiceError(
            "the compose backend needs Docker, but there is no `docker` command on PATH; install Docker Engine "
            f"with its compose plugin (on Debian, as root: .ci/docker-engine), {NO_DOCKER_HINT}"
        )
    engine = _docker(docker, "version", "--format", "{{.Server.Version}}")
    if engine.returncode != 0 or not engine.stdout.strip():
        reason = _first_line(engine.stderr) or "`docker version` reported no server"
        raise ServiceError(
            f"no Docker engine answers ({reason}); start Docker (on Debian, as root: .ci/docker-engine installs "
            f"and starts one) or point DOCKER_HOST at a running engine, {NO_DOCKER_HINT}"
        )
    plugin = _docker(docker, "compose", "version", "--short")
    if plugin.returncode != 0:
        raise ServiceError(
            f"the Docker engine answers but `docker compose` does not ({_first_line(plugin.stderr)}); install "
            f"the Compose v2 plugin (Docker's docker-compose-plugin; on Debian bookworm, trixie's docker-compose, "
            f"which .ci/docker-engine installs), {NO_DOCKER_HINT}"
        )
    return docker


def host_ca_bundle() -> str:
    """The CA bundle this host's Python verifies TLS with, handed to pip inside the image builds."""
    for candidate in (os.environ.get(PIP_CA_VAR), ssl.get_default_verify_paths().cafile, DEFAULT_PIP_CA):
        if candidate and Path(candidate).is_file():
            return candidate
    import certifi

    return str(certifi.where())


def failing_build_step(output: str) -> str:
    """The BuildKit step (`#N [service stage k/n] RUN ...`) whose number the error lines carry."""
    steps: dict[str, str] = {}
    for line in output.splitlines():
        number, _, rest = line.partition(" ")
        if number.startswith("#") and rest.startswith("["):
            steps.setdefault(number, rest)
        elif number.startswith("#") and rest.startswith("ERROR"):
            return steps.get(number, rest)
    return ""


def parse_cgroup_read(text: str) -> dict[str, Any]:
    """CGROUP_READ's line as numbers: the memory limit in bytes and the CPU quota in vCPUs (None: unlimited)."""
    fields = text.split()
    if not fields or fields[0] not in ("v1", "v2") or len(fields) != 4:
        raise ValueError(f"unexpected cgroup read-back: {text.strip()!r}")
    version, memory, quota, period = fields
    unlimited_memory = memory == "max" or int(memory) >= 2**62
    unlimited_cpu = quota in ("max", "-1")
    return {
        "cgroup": version,
        "memory_bytes": None if unlimited_memory else int(memory),
        "vcpus": None if unlimited_cpu else int(quota) / int(period),
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

    def _failure(self, what: str, compose: Any, exc: subprocess.CalledProcessError) -> ServiceError:
        logs = self._run(compose, "logs", "--no-color", "--tail", "30").stdout
        return ServiceError(
            f"`{what}` failed (exit {exc.returncode}):\n{_tail(exc.stderr)}"
            + (f"\n  last lines of `docker compose logs`:\n{_tail(logs)}" if logs.strip() else "")
        )

    def _run(
        self, compose: Any, *args: str, timeout_s: float = DOCKER_TIMEOUT_S * 6
    ) -> subprocess.CompletedProcess[str]:
        command = [*compose.compose_command_property, *args]
        try:
            return subprocess.run(
                command, cwd=COMPOSE_DIR, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise ServiceError(f"`docker compose {' '.join(args)}` did not finish within {timeout_s:.0f} s") from None

    def _remove(self, compose: Any, report: Reporter, volumes: bool = False) -> None:
        args = ["down", "--remove-orphans", *(["--volumes"] if volumes else [])]
        done = self._run(compose, *args)
        if done.returncode != 0:
            raise ServiceError(
                f"`docker compose {' '.join(args)}` failed (exit {done.returncode}):\n{_tail(done.stderr)}"
            )
        # Compose lets the shell's COMPOSE_PROJECT_NAME win over the env file, and so does this line.
        project = os.environ.get("COMPOSE_PROJECT_NAME", self.project)
        kept = "and its data volumes" if volumes else "(its data volumes kept: `harness down --purge` drops them)"
        report(f"compose: removed the containers and network of project {project} {kept}")

    def build(self, compose: Any, report: Reporter, docker: str = "docker") -> None:
        """Build the images compose runs, through the build cache; a failure names the failing step."""
        report("compose: building the images from compose/*/Dockerfile (cached steps are reused)")
        began = time.monotonic()
        # The Lambda image's profile is never started by compose, but built with the others.
        done = self._run(
            compose, "--profile", LAMBDA_PROFILE, "--progress", "plain", "build", timeout_s=BUILD_TIMEOUT_S
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            step = failing_build_step(output)
            raise ServiceError(
                f"`docker compose build` failed (exit {done.returncode})"
                + (f" at {step}" if step else "")
                + f"; last lines:\n{_tail(output, 20)}"
            )
        cached = output.count(" CACHED")
        report(f"compose: images ready in {time.monotonic() - began:.1f} s ({cached} steps cached)")
        self._remove_replaced_images(docker)

    @staticmethod
    def _remove_replaced_images(docker: str) -> None:
        """Compose labels each image with the project that built it, so a build from another state directory
        makes a new image (the same layers) and leaves the previous one untagged: remove those of this harness,
        and only those, whoever's project built them."""
        label = "com.docker.compose.project"
        listed = _docker(docker, "images", "--quiet", "--filter", "dangling=true", "--filter", f"label={label}")
        ids = sorted(set(listed.stdout.split()))
        if not ids:
            return
        inspected = _docker(
            docker, "image", "inspect", "--format", f'{{{{.Id}}}} {{{{index .Config.Labels "{label}"}}}}', *ids
        )
        replaced = [
            image
            for image, _, project in (line.partition(" ") for line in inspected.stdout.splitlines())
            # The harness's projects, and the file's own name for a stack started by hand.
            if project == PROJECT_NAME or project.startswith(f"{PROJECT_NAME}-")
        ]
        if replaced:
            # Best effort: an image a stopped container still uses stays, and is tried again next time.
            _docker(docker, "image", "rm", *replaced)

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
            self.build(compose, report, docker)
        report(f"compose: docker compose up --wait, project {values['COMPOSE_PROJECT_NAME']}")
        began = time.monotonic()
        try:
            compose.start()
        except subprocess.CalledProcessError as exc:
            failure = self._failure("docker compose up --wait", compose, exc)
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
                "lambda": lambda_runtime.facts(),
            },
        )
        # Compose's healthchecks ran inside the containers; these run from the host, through the published
        # ports, with the endpoints every client gets (TLS verified against the CA, names checked).
        rows = probe_stack(endpoints)
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

    def endpoints(self) -> StackEndpoints | None:
        endpoints = load_endpoints(self.state)
        return endpoints if endpoints is not None and endpoints.backend == self.name else None

    def container_sizing(self) -> dict[str, dict[str, Any]]:
        """Per service: the limits the engine was given (`docker inspect`) and what the container's kernel
        holds (its cgroup files); empty when no engine answers."""
        try:
            docker = require_docker()
            compose = self._compose(docker)
            containers = compose.get_containers()
        except (ServiceError, subprocess.CalledProcessError, ValueError):
            return {}
        sizing: dict[str, dict[str, Any]] = {}
        for container in containers:
            engine_given = "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.Image}}"
            inspect = _docker(docker, "inspect", "--format", engine_given, container.ID)
            kernel = _docker(docker, "exec", container.ID, "sh", "-c", CGROUP_READ)
            if inspect.returncode != 0 or kernel.returncode != 0:
                continue
            memory, nano_cpus, image_id = inspect.stdout.split()
            sizing[container.Service] = {
                "image_id": image_id,
                "engine_memory_bytes": int(memory) or None,
                "engine_vcpus": int(nano_cpus) / 1e9 if int(nano_cpus) else None,
                **parse_cgroup_read(kernel.stdout),
            }
        return sizing

    def status(self) -> StackStatus:
        endpoints = self.endpoints()
        facts: dict[str, Any] = {"state_dir": str(self.state)}
        if endpoints is None:
            return StackStatus(self.name, [], {**facts, "note": "the compose stack was not started from here"})
        containers = self.container_sizing()
        facts.update(project=endpoints.facts.get("project"), tls=endpoints.facts.get("tls"), containers=containers)
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
