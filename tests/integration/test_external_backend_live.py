"""The external backend pointed at a running stack: the same endpoints, read-only probes, hands off.

The session's stack stands in for a staging deployment; the config file describes it the way a team
would describe theirs, with the database password left to Secrets Manager.
"""

import os
import shlex
import subprocess
import sys

import pytest

from harness.backends.external import ExternalBackend
from harness.backends.guard import DestructiveRefusedError, require_destructive_allowed
from harness.config import Settings

pytestmark = pytest.mark.integration

REDIS_PASSWORD_VAR = "DBUNIT_TEST_REDIS_PASSWORD"


@pytest.fixture
def config_file(stack, tmp_path):
    path = tmp_path / "external.toml"
    path.write_text(
        f"""
[postgres]
user = "{stack.proxy.user}"
dbname = "{stack.proxy.dbname}"
# Unset on purpose: the password must come from the secret RDS-style credentials live in.
password_env = "DBUNIT_TEST_UNSET_DB_PASSWORD"
password_secret_id = "{stack.resources.db_secret_id}"
ca_bundle = "{stack.proxy.sslrootcert}"
[postgres.proxy]
host = "{stack.proxy.host}"
port = {stack.proxy.port}
sslmode = "{stack.proxy.sslmode or "prefer"}"
[postgres.direct]
host = "{stack.direct.host}"
port = {stack.direct.port}
sslmode = "{stack.direct.sslmode or "prefer"}"
[redis]
host = "{stack.redis.host}"
port = {stack.redis.port}
password_env = "{REDIS_PASSWORD_VAR}"
tls = {str(stack.redis.tls).lower()}
[aws]
region = "{stack.aws.region}"
endpoint_url = "{stack.aws.url}"
exports_bucket = "{stack.resources.exports_bucket}"
db_secret_id = "{stack.resources.db_secret_id}"
kms_key_id = "{stack.resources.kms_key_id}"
"""
    )
    return path


@pytest.fixture
def aws_credentials(stack, monkeypatch):
    # The emulator's keys reach boto3 through its default chain, as a deployment's would.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", stack.aws.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", stack.aws.secret_access_key.reveal())
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("DBUNIT_TEST_UNSET_DB_PASSWORD", raising=False)


@pytest.fixture
def external(stack, config_file, aws_credentials, tmp_path):
    settings = Settings(backend="external", state_dir=tmp_path / "state", external_config=config_file)
    return ExternalBackend(settings, environ={REDIS_PASSWORD_VAR: stack.redis.password.reveal()})


def test_external_yields_the_same_endpoint_objects_as_the_stack_it_describes(stack, external):
    endpoints = external.endpoints()
    assert endpoints.proxy == stack.proxy
    assert endpoints.direct == stack.direct
    assert endpoints.redis == stack.redis
    assert endpoints.resources == stack.resources
    assert (endpoints.aws.url, endpoints.aws.region) == (stack.aws.url, stack.aws.region)


def test_status_probes_every_service_and_finds_it_healthy(external, harness_settings):
    status = external.status()
    assert status.healthy, [(s.name, s.detail) for s in status.services if not s.healthy]
    rows = {s.name: s for s in status.services}
    assert set(rows) == {"postgres (direct)", "proxy", "redis", "aws"}
    assert "max_connections=112" in rows["postgres (direct)"].sizing
    assert "pgvector" in rows["postgres (direct)"].sizing
    assert "volatile-lru" in rows["redis"].sizing
    assert rows["redis"].version.startswith("7.")


def test_up_and_down_say_so_and_leave_the_deployment_running(stack, external):
    reports: list[str] = []
    assert external.up(reports.append).proxy == stack.proxy
    external.down(reports.append)
    assert "nothing was started" in reports[0]
    assert any("nothing was stopped" in line for line in reports)
    with stack.direct.connect() as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    assert stack.redis.client().ping()


def test_destructive_scenarios_refuse_to_run_against_it(external):
    with pytest.raises(DestructiveRefusedError, match="HARNESS_ALLOW_DESTRUCTIVE=1"):
        require_destructive_allowed(external.endpoints(), "deleting seeded users", settings=external.settings)


def test_the_cli_reports_and_exports_it_like_any_other_backend(stack, config_file, aws_credentials, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")},
        "HARNESS_BACKEND": "external",
        "HARNESS_EXTERNAL_CONFIG": str(config_file),
        "HARNESS_STATE_DIR": str(tmp_path / "cli-state"),
        REDIS_PASSWORD_VAR: stack.redis.password.reveal(),
    }

    def harness(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )

    status = harness("status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = status.stdout.splitlines()[2:6]
    assert [row.split()[0] for row in rows] == ["postgres", "proxy", "redis", "aws"]
    assert all(row.endswith("  ok") for row in rows), status.stdout
    exported = harness("env")
    assert exported.returncode == 0, exported.stderr
    assert f"export DATABASE_URL={shlex.quote(stack.proxy.url(reveal=True))}" in exported.stdout.splitlines()
