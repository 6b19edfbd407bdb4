"""The external backend's config file, credentials, up/down that change nothing, and the destructive guard."""

import json
from pathlib import Path

import pytest

from harness.backends import get_backend
from harness.backends.external import ExternalBackend, load_external_config, resolve_endpoints
from harness.backends.guard import DestructiveRefusedError, refuses_destructive, require_destructive_allowed
from harness.config import ConfigError, Settings
from harness.endpoints import Secret, endpoints_path, load_endpoints, save_endpoints
from harness.services.process import ServiceError

EXAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "external.example.toml"

MINIMAL = """
[postgres]
user = "app"
dbname = "unit"
[postgres.proxy]
host = "proxy.example"
[postgres.direct]
host = "db.example"
port = 6543
[redis]
host = "cache.example"
[aws]
region = "eu-west-1"
exports_bucket = "exports"
db_secret_id = "unit/db"
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "external.toml"
    path.write_text(body)
    return path


def no_secrets_manager(aws, secret_id):
    raise AssertionError(f"Secrets Manager was asked for {secret_id} although the environment had the password")


def test_the_documented_example_parses():
    config = load_external_config(EXAMPLE)
    assert config.proxy.host.endswith(".proxy-abcdefghijkl.us-east-2.rds.amazonaws.com")
    assert (config.db_user, config.dbname, config.region) == ("dbunit_app", "dbunit", "us-east-2")
    assert config.db_password_env == "DATABASE_PASSWORD"
    assert config.db_password_secret_id == config.db_secret_id == "dbunit/rds/master"
    assert config.aws_endpoint_url == ""


def test_defaults_fill_ports_password_variables_and_the_secret_to_read(tmp_path):
    config = load_external_config(write(tmp_path, MINIMAL))
    assert (config.proxy.port, config.direct.port, config.redis.port, config.redis_db) == (5432, 6543, 6379, 0)
    assert (config.db_password_env, config.redis_password_env) == ("DATABASE_PASSWORD", "REDIS_PASSWORD")
    assert config.db_password_secret_id == "unit/db"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[postgres\n", "not valid TOML"),
        (MINIMAL.replace('[redis]\nhost = "cache.example"\n', ""), r"\[redis\] is required"),
        (MINIMAL.replace('host = "proxy.example"', ""), r"\[postgres.proxy\] host is required"),
        (
            MINIMAL.replace("port = 6543", 'port = "6543"'),
            r"\[postgres.direct\] port must be an integer from 1 to 65535",
        ),
        (MINIMAL.replace("port = 6543", "port = 70000"), "must be an integer from 1 to 65535, got 70000"),
        (MINIMAL.replace('user = "app"', 'user = ""'), r"\[postgres\] user must not be empty"),
        (MINIMAL.replace('user = "app"', "user = 7"), r"\[postgres\] user must be a string"),
        (MINIMAL + 'password = "hunter2"\n', r"\[aws\] has unknown key\(s\) password"),
        (MINIMAL.replace("[postgres.direct]", "[postgres.replica]"), r"\[postgres\] has unknown key\(s\) replica"),
        (
            MINIMAL.replace('[postgres.direct]\nhost = "db.example"\nport = 6543\n', ""),
            r"\[postgres.direct\] is required",
        ),
        ('postgres = "x"\n' + MINIMAL[MINIMAL.index("[redis]") :], r"\[postgres\] must be a table"),
        ("[harness]\n" + MINIMAL, r"the top level has unknown key\(s\) harness"),
    ],
)
def test_malformed_files_say_what_and_where(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as failure:
        load_external_config(path)
    assert str(path) in str(failure.value)


def test_a_missing_file_names_the_example(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist; copy fixtures/external.example.toml"):
        load_external_config(tmp_path / "nope.toml")


def test_the_backend_needs_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="HARNESS_EXTERNAL_CONFIG"):
        get_backend(Settings(backend="external", state_dir=tmp_path))


def test_passwords_from_the_environment(tmp_path):
    config = load_external_config(write(tmp_path, MINIMAL))
    endpoints = resolve_endpoints(
        config, {"DATABASE_PASSWORD": "db-pw", "REDIS_PASSWORD": "redis-pw"}, read_secret=no_secrets_manager
    )
    assert endpoints.backend == "external"
    assert endpoints.proxy.password == endpoints.direct.password == Secret("db-pw")
    assert (endpoints.proxy.host, endpoints.proxy.port, endpoints.proxy.user) == ("proxy.example", 5432, "app")
    assert (endpoints.direct.host, endpoints.direct.port, endpoints.direct.dbname) == ("db.example", 6543, "unit")
    assert endpoints.redis.password == Secret("redis-pw")
    # Real AWS: no endpoint URL and no keys of ours, so the SDK's own chain applies.
    assert (endpoints.aws.url, endpoints.aws.access_key_id, endpoints.aws.region) == ("", "", "eu-west-1")
    assert "AWS_ENDPOINT_URL" not in endpoints.environment()
    assert (endpoints.resources.exports_bucket, endpoints.resources.db_secret_id) == ("exports", "unit/db")


def test_db_password_from_the_rds_secret_when_the_variable_is_unset(tmp_path):
    asked = []

    def secrets_manager(aws, secret_id):
        asked.append((aws.region, aws.url, secret_id))
        return json.dumps({"engine": "postgres", "username": "app", "password": "from-the-secret"})

    config = load_external_config(write(tmp_path, MINIMAL))
    endpoints = resolve_endpoints(config, {}, read_secret=secrets_manager)
    assert endpoints.proxy.password == Secret("from-the-secret")
    assert asked == [("eu-west-1", "", "unit/db")]
    # No Redis password anywhere: connect without AUTH.
    assert endpoints.redis.password == Secret("")


def test_a_plain_string_secret_is_the_password_and_json_without_one_is_an_error(tmp_path):
    config = load_external_config(write(tmp_path, MINIMAL))
    assert resolve_endpoints(config, {}, read_secret=lambda a, s: "plain").proxy.password == Secret("plain")
    with pytest.raises(ServiceError, match='JSON without a string "password" key'):
        resolve_endpoints(config, {}, read_secret=lambda a, s: '{"username": "app"}')


def test_an_unreadable_secret_says_which_variable_would_do_instead(tmp_path):
    def denied(aws, secret_id):
        raise ServiceError(f"cannot read Secrets Manager secret {secret_id!r}: AccessDeniedException")

    config = load_external_config(write(tmp_path, MINIMAL))
    with pytest.raises(
        ServiceError, match=r"DATABASE_PASSWORD is unset and cannot read .*'unit/db'.*Export DATABASE_PASSWORD"
    ):
        resolve_endpoints(config, {}, read_secret=denied)


def test_no_password_anywhere_names_both_places(tmp_path):
    body = MINIMAL.replace(
        'dbname = "unit"', 'dbname = "unit"\npassword_env = "STAGING_DB_PW"\npassword_secret_id = ""'
    )
    config = load_external_config(write(tmp_path, body))
    with pytest.raises(ConfigError, match="export STAGING_DB_PW, or name a Secrets Manager secret"):
        resolve_endpoints(config, {}, read_secret=no_secrets_manager)


def external_backend(tmp_path: Path) -> ExternalBackend:
    settings = Settings(backend="external", state_dir=tmp_path / "state", external_config=write(tmp_path, MINIMAL))
    return ExternalBackend(settings, environ={"DATABASE_PASSWORD": "pw"}, read_secret=no_secrets_manager)


def test_up_starts_nothing_says_so_and_writes_the_local_endpoint_file(tmp_path):
    backend = external_backend(tmp_path)
    reports: list[str] = []
    endpoints = backend.up(reports.append)
    assert "is not the harness's to start; nothing was started or changed" in reports[0]
    assert load_endpoints(tmp_path / "state") == endpoints
    assert list((tmp_path / "state").iterdir()) == [endpoints_path(tmp_path / "state")]


def test_down_stops_nothing_says_so_and_forgets_only_its_own_endpoint_file(tmp_path):
    backend = external_backend(tmp_path)
    backend.up(lambda _: None)
    reports: list[str] = []
    backend.down(reports.append, purge=True)
    assert "is not the harness's to stop; nothing was stopped or changed" in reports[0]
    assert not endpoints_path(tmp_path / "state").exists()
    assert (tmp_path / "external.toml").exists()


def test_up_refuses_to_replace_another_backends_endpoint_file(tmp_path):
    backend = external_backend(tmp_path)
    compose_like = backend.endpoints().__class__(**{**backend.endpoints().__dict__, "backend": "compose"})
    save_endpoints(tmp_path / "state", compose_like)
    with pytest.raises(ServiceError, match="belongs to the compose stack"):
        backend.up(lambda _: None)
    backend.down(lambda _: None)
    assert load_endpoints(tmp_path / "state").backend == "compose"


# -- destructive scenarios --------------------------------------------------------------------------


def test_destructive_scenarios_are_refused_against_external_unless_allowed(tmp_path):
    external = Settings(backend="external", state_dir=tmp_path, external_config=tmp_path / "x.toml")
    assert refuses_destructive(external)
    assert not refuses_destructive(Settings(backend="external", allow_destructive=True))
    assert not refuses_destructive(Settings(backend="embedded"))
    assert not refuses_destructive(Settings(backend="compose"))
    with pytest.raises(DestructiveRefusedError) as failure:
        require_destructive_allowed(external, "the fault drill")
    message = str(failure.value)
    assert message.startswith("refusing to run the fault drill against the external deployment")
    assert "HARNESS_ALLOW_DESTRUCTIVE=1" in message


def test_the_guard_reads_the_backend_from_endpoints_and_the_permission_from_this_run(tmp_path, monkeypatch):
    endpoints = external_backend(tmp_path).endpoints()
    with pytest.raises(DestructiveRefusedError, match=r"external deployment at proxy\.example"):
        require_destructive_allowed(endpoints, settings=Settings(backend="embedded"))
    require_destructive_allowed(endpoints, settings=Settings(backend="embedded", allow_destructive=True))
    # Without settings, the permission comes from this run's environment.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_CONFIG", raising=False)
    monkeypatch.setenv("HARNESS_ALLOW_DESTRUCTIVE", "0")
    with pytest.raises(DestructiveRefusedError):
        require_destructive_allowed(endpoints)
    monkeypatch.setenv("HARNESS_ALLOW_DESTRUCTIVE", "1")
    require_destructive_allowed(endpoints)


@pytest.mark.parametrize("backend", ["embedded", "compose"])
def test_the_harness_own_stacks_are_never_refused_even_when_the_run_is_configured_for_external(tmp_path, backend):
    endpoints = external_backend(tmp_path).endpoints()
    own = endpoints.__class__(**{**endpoints.__dict__, "backend": backend})
    # The endpoints' backend decides, not the run's: a stack the harness started is its own to break.
    refusing = Settings(backend="external", allow_destructive=False)
    assert refuses_destructive(refusing)
    require_destructive_allowed(own, settings=refusing)
