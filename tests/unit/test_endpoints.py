import dataclasses
import json
import stat

import pytest

from harness.endpoints import (
    EndpointFileError,
    Secret,
    StackEndpoints,
    endpoints_path,
    load_endpoints,
    save_endpoints,
)


def test_secret_never_shows_itself(endpoints):
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in repr(endpoints.proxy)
    assert secret.reveal() == "hunter2"


def test_urls_mask_passwords_unless_asked_and_escape_them(endpoints):
    assert endpoints.proxy.url() == "postgresql://dbunit_admin:***@127.0.0.1:16432/dbunit"
    assert endpoints.proxy.url(reveal=True) == "postgresql://dbunit_admin:p%40ss%2Fword@127.0.0.1:16432/dbunit"
    assert endpoints.redis.url(reveal=True) == "redis://default:r3dis@127.0.0.1:16379/0"


def test_round_trip_through_the_state_directory(tmp_path, endpoints):
    path = save_endpoints(tmp_path, endpoints)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_endpoints(tmp_path) == endpoints


def test_environment_uses_the_same_names_for_every_backend(endpoints):
    env = endpoints.environment()
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


def with_lambda_runtime(base: StackEndpoints) -> StackEndpoints:
    return dataclasses.replace(base, aws=dataclasses.replace(base.aws, lambda_url="http://127.0.0.1:14567"))


def test_lambda_clients_go_to_the_lambda_url_and_others_do_not(endpoints):
    aws = with_lambda_runtime(endpoints).aws
    assert aws.client("lambda").meta.endpoint_url == "http://127.0.0.1:14567"
    assert aws.client("s3").meta.endpoint_url == "http://127.0.0.1:14566"
    assert endpoints.aws.client("lambda").meta.endpoint_url == "http://127.0.0.1:14566"


def test_lambda_url_is_exported_and_survives_the_file(tmp_path, endpoints):
    with_lambda = with_lambda_runtime(endpoints)
    assert with_lambda.environment()["AWS_ENDPOINT_URL_LAMBDA"] == "http://127.0.0.1:14567"
    assert "AWS_ENDPOINT_URL_LAMBDA" not in endpoints.environment()
    save_endpoints(tmp_path, with_lambda)
    assert load_endpoints(tmp_path) == with_lambda


def test_a_file_written_before_the_lambda_runtime_still_loads(tmp_path, endpoints):
    data = endpoints.to_json()
    del data["aws"]["lambda_url"]
    endpoints_path(tmp_path).write_text(json.dumps(data))
    assert load_endpoints(tmp_path).aws.lambda_url == ""
