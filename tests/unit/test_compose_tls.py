"""TLS on the compose backend, checked without Docker: the committed file (tls = required) and the overrides
for optional and off, merged as compose merges them, validated against the Compose schema, compared with
what the embedded services configure, and the endpoints the backend yields in each mode."""

import copy
import importlib.resources
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.backends import compose_spec
from harness.backends.compose_spec import COMPOSE_FILE, CONTAINER_TLS, TLS_DIR_VAR, TLS_MOUNT
from harness.config import Settings, shipped_unit
from harness.services.pgbouncer import client_tls_settings
from harness.services.redis import ELASTICACHE_RESTRICTED_COMMANDS, listener_settings
from harness.sizing import unit_sizing

MODES = ("required", "optional", "off")
# ${VAR}, ${VAR:-default}, ${VAR:?message}
INTERPOLATION = re.compile(r"^\$\{(?P<var>[A-Z0-9_]+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}$")


def schema_errors(document: dict) -> list[str]:
    # The schema Docker's compose-spec project publishes, as vendored by check-jsonschema.
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def merged(base: dict, override: dict) -> dict:
    """What `docker compose -f base -f override` runs: mappings merge key by key, everything else is replaced
    (command, healthcheck's test; the override never names volumes or ports, which compose merges by target)."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@pytest.fixture(scope="module")
def committed() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def running(committed: dict, tls: str) -> dict:
    """The compose model the backend hands to compose for `tls`, at the default profile."""
    if tls == Settings.tls:
        return committed
    sizing = unit_sizing(shipped_unit().db_instance_class, shipped_unit().cache_node_type)
    text = yaml.safe_dump(compose_spec.override(sizing, tls), sort_keys=False, width=1000)
    return merged(committed, yaml.safe_load(text))


def redis_options(command: list[str]) -> dict[str, list[str]]:
    """`--key v1 v2 --key2 v` as {key: [v1, v2]}, repeated keys (rename-command) joined as pairs."""
    options: dict[str, list[str]] = {}
    key = None
    for arg in command[1:]:
        if arg.startswith("--"):
            key = arg[2:]
            options.setdefault(key, [])
        else:
            options[key].append(arg)
    return options


def pgbouncer_settings(spec: dict) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in spec["command"])


def test_the_default_is_tls_required_and_the_committed_file_is_generated_for_it():
    assert Settings.tls == compose_spec.DEFAULT_TLS == "required"
    assert COMPOSE_FILE.read_text() == compose_spec.default_compose_text()


@pytest.mark.parametrize("tls", MODES)
def test_every_tls_mode_validates_against_the_compose_specification(committed, tls):
    assert schema_errors(running(committed, tls)) == []


@pytest.mark.parametrize("service", ["pgbouncer", "redis"])
def test_the_certificates_are_mounted_read_only_from_a_required_variable(committed, service):
    mounts = [m for m in committed["services"][service]["volumes"] if m.endswith(f":{TLS_MOUNT}:ro")]
    assert len(mounts) == 1, committed["services"][service]["volumes"]
    source = mounts[0].removesuffix(f":{TLS_MOUNT}:ro")
    reference = INTERPOLATION.match(source)
    assert reference and reference["var"] == TLS_DIR_VAR and reference["op"] == ":?"
    for path in (CONTAINER_TLS.ca, CONTAINER_TLS.cert, CONTAINER_TLS.key):
        assert str(path.parent) == TLS_MOUNT


def test_postgres_gets_no_certificate_and_stays_plain_as_on_the_embedded_stack(committed):
    postgres = committed["services"]["postgres"]
    assert not any(TLS_MOUNT in volume for volume in postgres["volumes"])
    assert not any(arg.startswith("ssl") for arg in postgres["command"])


def test_tls_required_proxy_requires_client_tls_with_the_embedded_settings(committed):
    spec = committed["services"]["pgbouncer"]
    settings = pgbouncer_settings(spec)
    assert settings["client_tls_sslmode"] == "require"
    assert settings["client_tls_key_file"] == str(CONTAINER_TLS.key)
    assert settings["client_tls_cert_file"] == str(CONTAINER_TLS.cert)
    assert settings["client_tls_ca_file"] == str(CONTAINER_TLS.ca)
    assert settings["client_tls_protocols"] == "secure"
    # Parity: the embedded PgBouncer writes exactly these lines, with its own paths.
    assert {k: settings[k] for k in client_tls_settings("required", CONTAINER_TLS)} == client_tls_settings(
        "required", CONTAINER_TLS
    )


def test_tls_required_proxy_healthcheck_verifies_the_certificate_and_its_name(committed):
    test = committed["services"]["pgbouncer"]["healthcheck"]["test"][1]
    assert "pg_isready" not in test
    assert f"PGSSLMODE=verify-full PGSSLROOTCERT={CONTAINER_TLS.ca} psql -h 127.0.0.1 " in test
    # The console, not the pool: a server connection would idle in the pool after each check.
    assert "-p 6432" in test and "-d pgbouncer" in test and "SHOW VERSION" in test


def test_tls_required_redis_listens_on_a_tls_port_only_with_a_password(committed):
    command = committed["services"]["redis"]["command"]
    options = redis_options(command)
    assert options["port"] == ["0"], "a plain port would let clients skip TLS"
    assert options["tls-port"] == ["6379"]
    assert options["tls-cert-file"] == [str(CONTAINER_TLS.cert)]
    assert options["tls-key-file"] == [str(CONTAINER_TLS.key)]
    assert options["tls-ca-cert-file"] == [str(CONTAINER_TLS.ca)]
    assert options["tls-auth-clients"] == ["no"]
    # One argument: redis-server quotes it itself (a quoted value would reach OpenSSL with its quotes).
    assert options["tls-protocols"] == ["TLSv1.2 TLSv1.3"]
    assert INTERPOLATION.match(options["requirepass"][0])["op"] == ":?"
    embedded = {k: v.strip('"') for k, v in listener_settings(6379, CONTAINER_TLS).items()}
    assert {k: options[k][0] for k in embedded} == embedded


def test_redis_renames_away_every_command_elasticache_restricts(committed):
    command = committed["services"]["redis"]["command"]
    renamed = [command[i + 1] for i, arg in enumerate(command) if arg == "--rename-command"]
    assert renamed == list(ELASTICACHE_RESTRICTED_COMMANDS)
    assert "CONFIG" in renamed and "SHUTDOWN" in renamed
    for i, arg in enumerate(command):
        if arg == "--rename-command":
            assert command[i + 2] == "", f"{command[i + 1]} renamed to {command[i + 2]!r}, not disabled"


def test_tls_required_redis_healthcheck_speaks_tls_against_the_mounted_ca(committed):
    test = committed["services"]["redis"]["healthcheck"]["test"][1]
    assert f"redis-cli --tls --cacert {CONTAINER_TLS.ca} -h 127.0.0.1 -p 6379 ping" in test


def test_tls_optional_offers_tls_on_the_proxy_and_leaves_redis_plain_as_the_embedded_stack(committed):
    spec = running(committed, "optional")
    settings = pgbouncer_settings(spec["services"]["pgbouncer"])
    assert settings["client_tls_sslmode"] == "allow"
    assert settings["client_tls_key_file"] == str(CONTAINER_TLS.key)
    assert "verify-full" in spec["services"]["pgbouncer"]["healthcheck"]["test"][1]
    redis = redis_options(spec["services"]["redis"]["command"])
    assert redis["port"] == ["6379"] and "tls-port" not in redis
    assert "--tls" not in spec["services"]["redis"]["healthcheck"]["test"][1]
    # What the override leaves alone is the committed file's.
    retries = committed["services"]["redis"]["healthcheck"]["retries"]
    assert spec["services"]["redis"]["healthcheck"]["retries"] == retries
    assert spec["services"]["aws"] == committed["services"]["aws"]


def test_tls_off_is_plain_everywhere_and_keeps_the_restrictions(committed):
    spec = running(committed, "off")
    settings = pgbouncer_settings(spec["services"]["pgbouncer"])
    assert settings["client_tls_sslmode"] == "disable"
    assert not any(key.startswith("client_tls_") and key != "client_tls_sslmode" for key in settings)
    assert "PGSSLMODE=disable psql" in spec["services"]["pgbouncer"]["healthcheck"]["test"][1]
    command = spec["services"]["redis"]["command"]
    redis = redis_options(command)
    assert redis["port"] == ["6379"] and not any(key.startswith("tls-") for key in redis)
    assert command.count("--rename-command") == len(ELASTICACHE_RESTRICTED_COMMANDS)
    assert INTERPOLATION.match(redis["requirepass"][0])["op"] == ":?"


@pytest.mark.parametrize("tls", MODES)
def test_each_mode_keeps_the_pool_and_cache_sizing(committed, tls):
    sizing = unit_sizing(shipped_unit().db_instance_class, shipped_unit().cache_node_type)
    spec = running(committed, tls)
    settings = pgbouncer_settings(spec["services"]["pgbouncer"])
    assert {k: settings[k] for k in sizing.proxy.pgbouncer_settings()} == sizing.proxy.pgbouncer_settings()
    redis = redis_options(spec["services"]["redis"]["command"])
    assert {k: redis[k][0] for k in sizing.redis.server_settings()} == sizing.redis.server_settings()


def test_an_override_for_another_profile_carries_the_tls_of_the_mode(committed):
    small = compose_spec.override(unit_sizing("db.t3.small", "cache.t3.small"), "required")
    settings = pgbouncer_settings(small["services"]["pgbouncer"])
    assert settings["client_tls_sslmode"] == "require"
    assert redis_options(small["services"]["redis"]["command"])["tls-port"] == ["6379"]


def test_the_container_paths_are_the_files_the_certificate_module_writes():
    from harness.services.certificates import tls_files

    names = tls_files(Path("/x"))
    assert (CONTAINER_TLS.ca.name, CONTAINER_TLS.cert.name, CONTAINER_TLS.key.name) == (
        names.ca.name,
        names.cert.name,
        names.key.name,
    )
