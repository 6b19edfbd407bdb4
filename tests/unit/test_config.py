from pathlib import Path

import pytest

from harness.config import ConfigError, Settings, resolve_settings


def write_config(directory: Path, body: str) -> Path:
    path = directory / "harness.toml"
    path.write_text(body)
    return path


def test_defaults_without_file_or_environment(tmp_path):
    settings = resolve_settings(environ={}, cwd=tmp_path)
    assert settings == Settings(state_dir=tmp_path / ".harness")
    assert settings.config_file is None


def test_argument_beats_environment_beats_file_beats_default(tmp_path):
    write_config(tmp_path, "[harness]\nredis_port = 20001\nproxy_port = 20002\npostgres_port = 20003\n")
    env = {"HARNESS_REDIS_PORT": "21001", "HARNESS_PROXY_PORT": "21002"}
    settings = resolve_settings({"redis_port": 22001}, environ=env, cwd=tmp_path)
    assert settings.redis_port == 22001  # argument
    assert settings.proxy_port == 21002  # environment
    assert settings.postgres_port == 20003  # file
    assert settings.aws_port == Settings.aws_port  # default


def test_none_argument_means_unset(tmp_path):
    settings = resolve_settings({"backend": None}, environ={"HARNESS_BACKEND": "external"}, cwd=tmp_path)
    assert settings.backend == "external"


def test_file_found_in_an_ancestor_and_state_dir_relative_to_it(tmp_path):
    write_config(tmp_path, '[harness]\nstate_dir = "state"\n')
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    settings = resolve_settings(environ={}, cwd=nested)
    assert settings.state_dir == tmp_path / "state"
    assert settings.config_file == tmp_path / "harness.toml"


def test_harness_config_variable_names_the_file(tmp_path):
    path = tmp_path / "elsewhere.toml"
    path.write_text('[harness]\ndb_instance_class = "db.t3.small"\n')
    settings = resolve_settings(environ={"HARNESS_CONFIG": str(path)}, cwd=tmp_path)
    assert settings.db_instance_class == "db.t3.small"


@pytest.mark.parametrize(
    ("body", "env", "message"),
    [
        ("[harness]\nredis_prot = 1\n", {}, "unknown setting.*redis_prot"),
        ("[harness]\nredis_port = 'x'\n", {}, "redis_port must be int"),
        ("[harness\n", {}, "not valid TOML"),
        ("", {"HARNESS_POSTGRES_PORT": "abc"}, "HARNESS_POSTGRES_PORT: postgres_port must be int"),
        ("", {"HARNESS_BACKEND": "docker"}, "backend must be one of"),
        ("", {"HARNESS_DB_INSTANCE_CLASS": "db.x9.huge"}, "unknown DB instance class"),
        ("", {"HARNESS_REDIS_PORT": "15432"}, "ports must differ"),
        ("", {"HARNESS_AWS_PORT": "80"}, "between 1024 and 65535"),
        ("", {"HARNESS_CGROUPS": "maybe"}, "cgroups must be one of"),
        ("", {"HARNESS_CONFIG": "/nonexistent/harness.toml"}, "not a file"),
    ],
)
def test_bad_configuration_names_the_source_and_the_problem(tmp_path, body, env, message):
    if body:
        write_config(tmp_path, body)
    with pytest.raises(ConfigError, match=message):
        resolve_settings(environ=env, cwd=tmp_path)


def test_environment_is_read_when_resolving_not_at_import(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_REGION", "eu-west-1")
    assert resolve_settings(cwd=tmp_path).region == "eu-west-1"
    monkeypatch.setenv("HARNESS_REGION", "us-east-2")
    assert resolve_settings(cwd=tmp_path).region == "us-east-2"


def test_external_config_is_relative_to_the_config_file_like_state_dir(tmp_path):
    write_config(tmp_path, '[harness]\nbackend = "external"\nexternal_config = "deploy/staging.toml"\n')
    nested = tmp_path / "sub"
    nested.mkdir()
    settings = resolve_settings(environ={}, cwd=nested)
    assert settings.external_config == tmp_path / "deploy" / "staging.toml"
    assert Settings().external_config is None


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), ("YES", True), ("0", False), ("false", False), ("", False)]
)
def test_allow_destructive_from_the_environment(tmp_path, raw, expected):
    settings = resolve_settings(environ={"HARNESS_ALLOW_DESTRUCTIVE": raw}, cwd=tmp_path)
    assert settings.allow_destructive is expected


def test_allow_destructive_is_off_unless_set_and_rejects_anything_but_a_boolean(tmp_path):
    assert resolve_settings(environ={}, cwd=tmp_path).allow_destructive is False
    write_config(tmp_path, "[harness]\nallow_destructive = true\n")
    assert resolve_settings(environ={}, cwd=tmp_path).allow_destructive is True
    with pytest.raises(ConfigError, match="HARNESS_ALLOW_DESTRUCTIVE: allow_destructive must be a boolean"):
        resolve_settings(environ={"HARNESS_ALLOW_DESTRUCTIVE": "maybe"}, cwd=tmp_path)


def test_lambda_runtime_port_and_concurrency_resolve_like_every_setting(tmp_path):
    defaults = resolve_settings(environ={}, cwd=tmp_path)
    assert (defaults.lambda_port, defaults.lambda_concurrency) == (14567, 10)
    write_config(tmp_path, "[harness]\nlambda_port = 20567\n")
    settings = resolve_settings(environ={"HARNESS_LAMBDA_CONCURRENCY": "3"}, cwd=tmp_path)
    assert (settings.lambda_port, settings.lambda_concurrency) == (20567, 3)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HARNESS_LAMBDA_PORT": "14566"}, "ports must differ"),
        ({"HARNESS_LAMBDA_PORT": "99"}, "lambda_port must be between 1024 and 65535"),
        ({"HARNESS_LAMBDA_PORT": "x"}, "HARNESS_LAMBDA_PORT: lambda_port must be int"),
        ({"HARNESS_LAMBDA_CONCURRENCY": "0"}, "lambda_concurrency must be between 1 and 1000"),
    ],
)
def test_bad_lambda_settings_are_named(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        resolve_settings(environ=env, cwd=tmp_path)


def test_the_workload_file_is_relative_to_the_config_file_and_unset_by_default(tmp_path):
    assert resolve_settings(environ={}, cwd=tmp_path).workload is None
    write_config(tmp_path, '[harness]\nworkload = "team/workload.yaml"\n')
    settings = resolve_settings(environ={}, cwd=tmp_path)
    assert settings.workload == tmp_path / "team" / "workload.yaml"
    assert resolve_settings(environ={"HARNESS_WORKLOAD": "/abs/w.yaml"}, cwd=tmp_path).workload == Path("/abs/w.yaml")


def test_burstable_settings_default_to_uncapped_credits_on_a_gp2_20_gib_volume(tmp_path):
    settings = resolve_settings(environ={}, cwd=tmp_path)
    assert (settings.cpu_credits, settings.storage_type, settings.allocated_storage_gib) == ("off", "gp2", 20)
    write_config(tmp_path, '[harness]\ncpu_credits = "live"\nstorage_type = "gp3"\n')
    settings = resolve_settings(environ={"HARNESS_ALLOCATED_STORAGE_GIB": "100"}, cwd=tmp_path)
    assert (settings.cpu_credits, settings.storage_type, settings.allocated_storage_gib) == ("live", "gp3", 100)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HARNESS_CPU_CREDITS": "unlimited"}, "cpu_credits must be one of off, live, drained"),
        ({"HARNESS_STORAGE_TYPE": "io1"}, "storage_type must be one of gp2, gp3"),
        ({"HARNESS_ALLOCATED_STORAGE_GIB": "10"}, "allocated storage must be 20..65536 GiB"),
        ({"HARNESS_ALLOCATED_STORAGE_GIB": "20.5"}, "allocated_storage_gib must be int"),
        ({"HARNESS_SIGNOFF_DRAINED": "maybe"}, "signoff_drained must be a boolean"),
        ({"HARNESS_DRAINED_STEP_CAP_S": "0"}, "drained_step_cap_s must be positive"),
        ({"HARNESS_CPU_CREDIT_START_BALANCE": "-1"}, "cpu_credit_start_balance must not be negative"),
    ],
)
def test_bad_burstable_settings_are_named(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        resolve_settings(environ=env, cwd=tmp_path)


def test_the_drained_pass_is_off_by_default_and_one_setting_turns_it_on(tmp_path):
    settings = resolve_settings(environ={}, cwd=tmp_path)
    assert (settings.signoff_drained, settings.drained_step_cap_s, settings.cpu_credit_start_balance) == (
        False,
        60.0,
        None,
    )
    write_config(tmp_path, "[harness]\nsignoff_drained = true\ndrained_step_cap_s = 30\n")
    settings = resolve_settings(environ={"HARNESS_CPU_CREDIT_START_BALANCE": "0.5"}, cwd=tmp_path)
    assert (settings.signoff_drained, settings.drained_step_cap_s, settings.cpu_credit_start_balance) == (
        True,
        30.0,
        0.5,
    )
    assert resolve_settings(environ={"HARNESS_SIGNOFF_DRAINED": "on"}, cwd=tmp_path).signoff_drained is True
