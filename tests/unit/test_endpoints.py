import json
import stat

import pytest

from harness.endpoints import (
    AwsEndpoint,
    AwsResources,
    EndpointFileError,
    PostgresEndpoint,
    RedisEndpoint,
    Secret,
    StackEndpoints,
    endpoints_path,
    load_endpoints,
    save_endpoints,
)


def sample() -> StackEndpoints:
    pw = Secret("p@ss/word")
    return StackEndpoints(
        backend="embedded",
        proxy=PostgresEndpoint("127.0.0.1", 16432, "admin", pw, "dbunit"),
        direct=PostgresEndpoint("127.0.0.1", 15432, "admin", pw, "dbunit"),
        redis=RedisEndpoint("127.0.0.1", 16379, Secret("r3dis")),
        aws=AwsEndpoint("http://127.0.0.1:14566", "us-east-2", "test", Secret("test")),
        resources=AwsResources("bucket", "secret-id", "key-id"),
        facts={"postgres": {"max_connections": 112}},
    )


def test_secret_never_shows_itself():
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in repr(sample().proxy)
    assert secret.reveal() == "hunter2"


def test_urls_mask_passwords_unless_asked_and_escape_them():
    endpoints = sample()
    assert endpoints.proxy.url() == "postgresql://admin:***@127.0.0.1:16432/dbunit"
    assert endpoints.proxy.url(reveal=True) == "postgresql://admin:p%40ss%2Fword@127.0.0.1:16432/dbunit"
    assert endpoints.redis.url(reveal=True) == "redis://default:r3dis@127.0.0.1:16379/0"


def test_round_trip_through_the_state_directory(tmp_path):
    path = save_endpoints(tmp_path, sample())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_endpoints(tmp_path) == sample()


def test_environment_uses_the_same_names_for_every_backend():
    env = sample().environment()
    assert set(env) >= {
        "DATABASE_URL",
        "DATABASE_DIRECT_URL",
        "REDIS_URL",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    assert env["DATABASE_URL"].endswith(":16432/dbunit")
    assert env["DATABASE_DIRECT_URL"].endswith(":15432/dbunit")


def test_missing_file_is_none(tmp_path):
    assert load_endpoints(tmp_path) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"schema_version": 99}), "schema_version is 99"),
        (json.dumps({"schema_version": 1, "backend": "embedded"}), "missing or has a malformed field"),
    ],
)
def test_damaged_file_is_a_clear_error(tmp_path, content, message):
    endpoints_path(tmp_path).write_text(content)
    with pytest.raises(EndpointFileError, match=message):
        load_endpoints(tmp_path)


def with_lambda_runtime() -> StackEndpoints:
    import dataclasses

    base = sample()
    return dataclasses.replace(base, aws=dataclasses.replace(base.aws, lambda_url="http://127.0.0.1:14567"))


def test_lambda_clients_go_to_the_lambda_url_and_others_do_not():
    aws = with_lambda_runtime().aws
    assert aws.client("lambda").meta.endpoint_url == "http://127.0.0.1:14567"
    assert aws.client("s3").meta.endpoint_url == "http://127.0.0.1:14566"
    assert sample().aws.client("lambda").meta.endpoint_url == "http://127.0.0.1:14566"


def test_lambda_url_is_exported_and_survives_the_file(tmp_path):
    endpoints = with_lambda_runtime()
    assert endpoints.environment()["AWS_ENDPOINT_URL_LAMBDA"] == "http://127.0.0.1:14567"
    assert "AWS_ENDPOINT_URL_LAMBDA" not in sample().environment()
    save_endpoints(tmp_path, endpoints)
    assert load_endpoints(tmp_path) == endpoints


def test_a_file_written_before_the_lambda_runtime_still_loads(tmp_path):
    data = sample().to_json()
    del data["aws"]["lambda_url"]
    endpoints_path(tmp_path).write_text(json.dumps(data))
    assert load_endpoints(tmp_path).aws.lambda_url == ""
