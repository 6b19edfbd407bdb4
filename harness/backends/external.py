"""The external backend: a real deployment (staging) the harness reaches but does not own.

Endpoints come from a TOML file (`external_config`; example in fixtures/external.example.toml) and
credentials from where a deployment keeps them: an environment variable, the AWS SDK's own chain
(AWS_PROFILE, SSO, instance role) and Secrets Manager. `up` and `down` change nothing there and say
so; `status` probes read-only (backends/probes.py). Destructive scenarios ask backends/guard.py first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, Reporter, StackStatus
from harness.backends.probes import aws_client_config, forget_endpoints, probe_stack, refuse_foreign_stack
from harness.config import ConfigError, Settings
from harness.endpoints import (
    AwsEndpoint,
    AwsResources,
    PostgresEndpoint,
    RedisEndpoint,
    Secret,
    StackEndpoints,
    save_endpoints,
)
from harness.inputfiles import InputFileError, parse_input_toml, read_input_text
from harness.services.process import ServiceError

DEFAULT_DB_PASSWORD_ENV = "DATABASE_PASSWORD"
DEFAULT_REDIS_PASSWORD_ENV = "REDIS_PASSWORD"
EXAMPLE_CONFIG = "fixtures/external.example.toml"


# -- the config file -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int
    # libpq's sslmode for a PostgreSQL endpoint (RDS and RDS Proxy: verify-full against AWS's bundle).
    sslmode: str = "verify-full"


SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class ExternalConfig:
    """What the file says; no secret is ever in it."""

    path: Path
    proxy: HostPort
    direct: HostPort
    db_user: str
    dbname: str
    db_password_env: str
    # Empty: no Secrets Manager lookup.
    db_password_secret_id: str
    redis: HostPort
    redis_db: int
    redis_password_env: str
    region: str
    # Empty: the SDK's default endpoint, i.e. real AWS.
    aws_endpoint_url: str
    exports_bucket: str
    db_secret_id: str
    kms_key_id: str
    # The CA bundle clients verify against (AWS's global-bundle.pem); empty: the system's trust store.
    ca_bundle: str = ""
    redis_tls: bool = True


class _Table:
    """One TOML table, read with errors that name the file, the table and the key."""

    def __init__(self, path: Path, name: str, data: Any, known: set[str]) -> None:
        self.path, self.name = path, name
        # The file's top level has no [name] of its own.
        self.label = f"[{name}]" if name else "the top level"
        if not isinstance(data, dict):
            raise self.error(f"{self.label} must be a table")
        unknown = sorted(set(data) - known)
        if unknown:
            raise self.error(f"{self.label} has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        self.data = data

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {message} (see {EXAMPLE_CONFIG})")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.error(f"{self.label} {key} is required")
        if not isinstance(value, str):
            raise self.error(f"{self.label} {key} must be a string, got {value!r}")
        return value

    def nonempty(self, key: str) -> str:
        value = self.text(key)
        if not value.strip():
            raise self.error(f"{self.label} {key} must not be empty")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(f"{self.label} {key} must be an integer from {low} to {high}, got {value!r}")
        return value

    def table(self, key: str, known: set[str]) -> _Table:
        if key not in self.data:
            raise self.error(f"[{self.name}.{key}] is required")
        return _Table(self.path, f"{self.name}.{key}", self.data[key], known)

    def host_port(self, default_port: int) -> HostPort:
        return HostPort(self.nonempty("host"), self.integer("port", default_port, 1, 65535))

    def pg_host_port(self) -> HostPort:
        sslmode = self.text("sslmode", "verify-full")
        if sslmode not in SSLMODES:
            raise self.error(f"{self.label} sslmode must be one of {', '.join(SSLMODES)}, got {sslmode!r}")
        return HostPort(self.nonempty("host"), self.integer("port", 5432, 1, 65535), sslmode)


def _relative_to(config: Path, named: str) -> str:
    """A path in the file is taken from the file's directory, as a reader of the file would."""
    return str((config.parent / named).resolve()) if named and not Path(named).is_absolute() else named


def load_external_config(path: Path) -> ExternalConfig:
    if not path.exists():
        raise ConfigError(f"external_config names {path}, which does not exist; copy {EXAMPLE_CONFIG}")
    try:
        data = parse_input_toml(read_input_text(path, "external_config"), path, "external_config")
    except InputFileError as exc:
        raise ConfigError(str(exc)) from None
    root = _Table(path, "", data, {"postgres", "redis", "aws"})
    for required in ("postgres", "redis", "aws"):
        if required not in data:
            raise root.error(f"[{required}] is required")
    pg = _Table(
        path,
        "postgres",
        data["postgres"],
        {"user", "dbname", "password_env", "password_secret_id", "proxy", "direct", "ca_bundle"},
    )
    redis = _Table(path, "redis", data["redis"], {"host", "port", "db", "password_env", "tls"})
    redis_tls = redis.data.get("tls", True)
    if not isinstance(redis_tls, bool):
        raise redis.error(f"{redis.label} tls must be true or false, got {redis_tls!r}")
    aws = _Table(path, "aws", data["aws"], {"region", "endpoint_url", "exports_bucket", "db_secret_id", "kms_key_id"})
    db_secret_id = aws.nonempty("db_secret_id")
    return ExternalConfig(
        path=path,
        proxy=pg.table("proxy", {"host", "port", "sslmode"}).pg_host_port(),
        direct=pg.table("direct", {"host", "port", "sslmode"}).pg_host_port(),
        db_user=pg.nonempty("user"),
        dbname=pg.nonempty("dbname"),
        db_password_env=pg.text("password_env", DEFAULT_DB_PASSWORD_ENV),
        # RDS keeps the credentials in the unit's own secret; that is where the password is looked for.
        db_password_secret_id=pg.text("password_secret_id", db_secret_id),
        redis=redis.host_port(6379),
        redis_db=redis.integer("db", 0, 0, 15),
        redis_password_env=redis.text("password_env", DEFAULT_REDIS_PASSWORD_ENV),
        region=aws.nonempty("region"),
        aws_endpoint_url=aws.text("endpoint_url", ""),
        exports_bucket=aws.nonempty("exports_bucket"),
        db_secret_id=db_secret_id,
        kms_key_id=aws.text("kms_key_id", ""),
        ca_bundle=_relative_to(path, pg.text("ca_bundle", "")),
        redis_tls=redis_tls,
    )


# -- credentials -----------------------------------------------------------------------------------

SecretReader = Callable[[AwsEndpoint, str], str]


def read_secret_string(aws: AwsEndpoint, secret_id: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = aws.client("secretsmanager", config=aws_client_config())
        return str(client.get_secret_value(SecretId=secret_id)["SecretString"])
    except (BotoCoreError, ClientError, KeyError) as exc:
        raise ServiceError(f"cannot read Secrets Manager secret {secret_id!r}: {exc}") from None


def _password_from_secret(document: str, secret_id: str) -> str:
    # RDS stores a JSON document ({"username", "password", ...}); a plain string is the password itself.
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError:
        return document
    if isinstance(parsed, dict):
        if not isinstance(parsed.get("password"), str):
            raise ServiceError(f'Secrets Manager secret {secret_id!r} is JSON without a string "password" key')
        return str(parsed["password"])
    return document


def _pg_endpoint(config: ExternalConfig, where: HostPort, password: Secret) -> PostgresEndpoint:
    verifies = where.sslmode in ("verify-ca", "verify-full")
    # libpq 16+ reads "system" as the platform's trust store.
    root = (config.ca_bundle or "system") if verifies else ""
    return PostgresEndpoint(where.host, where.port, config.db_user, password, config.dbname, where.sslmode, root)


def resolve_endpoints(
    config: ExternalConfig, environ: Mapping[str, str], read_secret: SecretReader = read_secret_string
) -> StackEndpoints:
    """The deployment's endpoints, passwords found at call time: environment first, then Secrets Manager."""
    # No keys of our own: the SDK finds credentials in its usual chain (environment, profile, SSO, role).
    aws = AwsEndpoint(config.aws_endpoint_url, config.region, "", Secret(""))
    db_password = environ.get(config.db_password_env, "")
    if not db_password:
        if not config.db_password_secret_id:
            raise ConfigError(
                f"no password for PostgreSQL user {config.db_user!r}: export {config.db_password_env}, or name a "
                f"Secrets Manager secret with password_secret_id in [postgres] of {config.path}"
            )
        try:
            document = read_secret(aws, config.db_password_secret_id)
        except ServiceError as exc:
            raise ServiceError(
                f"no database password: {config.db_password_env} is unset and {exc}. Export {config.db_password_env}, "
                "or fix the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, role)"
            ) from None
        db_password = _password_from_secret(document, config.db_password_secret_id)
    secret = Secret(db_password)
    # A Redis without AUTH is legitimate; an empty password makes the client skip AUTH.
    redis_password = Secret(environ.get(config.redis_password_env, ""))
    return StackEndpoints(
        backend=ExternalBackend.name,
        proxy=_pg_endpoint(config, config.proxy, secret),
        direct=_pg_endpoint(config, config.direct, secret),
        redis=RedisEndpoint(
            config.redis.host,
            config.redis.port,
            redis_password,
            config.redis_db,
            tls=config.redis_tls,
            ca_file=config.ca_bundle if config.redis_tls else "",
        ),
        aws=aws,
        resources=AwsResources(config.exports_bucket, config.db_secret_id, config.kms_key_id),
        facts={"external_config": str(config.path)},
    )


# -- the backend ------------------------------------------------------------------------------------


class ExternalBackend(Backend):
    name = "external"

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        read_secret: SecretReader = read_secret_string,
    ) -> None:
        if settings.external_config is None:
            raise ConfigError(
                "backend external needs a config file describing the deployment: set HARNESS_EXTERNAL_CONFIG=<path> "
                f'or external_config = "<path>" in harness.toml (example: {EXAMPLE_CONFIG})'
            )
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self.read_secret = read_secret
        # Parsed now, so a malformed file fails before anything else happens.
        self.config = load_external_config(settings.external_config)

    def _describe(self) -> str:
        return f"the deployment in {self.config.path} (proxy {self.config.proxy.host})"

    def up(self, report: Reporter) -> StackEndpoints:
        report(f"external: {self._describe()} is not the harness's to start; nothing was started or changed")
        refuse_foreign_stack(self.settings.state_dir, self.name)
        endpoints = self.endpoints()
        path = save_endpoints(self.settings.state_dir, endpoints)
        report(f"external: endpoints written to {path} for pytest, Locust and `harness env`")
        return endpoints

    def down(self, report: Reporter, purge: bool = False) -> None:
        report(f"external: {self._describe()} is not the harness's to stop; nothing was stopped or changed")
        # purge has nothing more to delete: the harness keeps no state for a deployment it does not own.
        forget_endpoints(self.settings.state_dir, self.name, report)

    def endpoints(self) -> StackEndpoints:
        return resolve_endpoints(self.config, self.environ, self.read_secret)

    def status(self) -> StackStatus:
        endpoints = self.endpoints()
        return StackStatus(self.name, probe_stack(endpoints), {"external_config": str(self.config.path)})
