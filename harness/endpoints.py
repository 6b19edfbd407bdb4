"""Endpoint objects: how a client reaches each service of the unit, whatever backend runs it.

The embedded, compose and external backends all produce a `StackEndpoints`; it is written to the
state directory as JSON (mode 0600, it holds passwords) so pytest, Locust and the CLI find the same
running stack.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

SCHEMA_VERSION = 1


class Secret:
    """A string that never shows itself in a repr, a log line or a report."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS endpoint: the CA bundle clients verify against, the server's certificate and key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class PostgresEndpoint:
    host: str
    port: int
    user: str
    password: Secret
    dbname: str
    # libpq's sslmode ("verify-full" where the endpoint requires TLS; "" leaves libpq's default) and the CA
    # bundle it verifies the server against. Every client built from this object inherits both.
    sslmode: str = ""
    sslrootcert: str = ""

    def tls_params(self) -> dict[str, str]:
        params = {"sslmode": self.sslmode} if self.sslmode else {}
        if self.sslrootcert:
            params["sslrootcert"] = self.sslrootcert
        return params

    def url(self, *, reveal: bool = False) -> str:
        password = quote(self.password.reveal(), safe="") if reveal else "***"
        query = urlencode(self.tls_params(), safe="/")
        return f"postgresql://{quote(self.user, safe='')}:{password}@{self.host}:{self.port}/{self.dbname}" + (
            f"?{query}" if query else ""
        )

    def conninfo_kwargs(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password.reveal(),
            "dbname": self.dbname,
            **self.tls_params(),
        }

    def connect(self, *, request_timeout_s: float | None = None, **kwargs: Any) -> Any:
        """A psycopg connection; kwargs (autocommit, prepare_threshold, connect_timeout...) pass through.

        `request_timeout_s` bounds every round trip on the client's side (see `bounded_connection_class`):
        what the application path sets, so a silent network fails a request instead of hanging it."""
        import psycopg

        params = {"connect_timeout": 10, **self.conninfo_kwargs(), **kwargs}
        if request_timeout_s is None:
            return psycopg.connect(**params)
        return bounded_connection_class(request_timeout_s).connect(**params)


@functools.cache
def bounded_connection_class(request_timeout_s: float) -> Any:
    """A psycopg Connection class whose every round trip fails after `request_timeout_s` without an answer.

    The server's statement_timeout cannot end a request whose bytes never reach it, and TCP_USER_TIMEOUT or
    keepalives never fire when a proxy in between (PgBouncer, RDS Proxy, a fault proxy) ACKs the bytes
    itself: only a client-side deadline bounds a blackhole. On expiry the connection is closed (its
    protocol state is unknown) and psycopg.OperationalError raised; a pool discards such a connection.
    For psycopg_pool, pass it as `connection_class`."""
    import psycopg
    from psycopg import errors

    class BoundedConnection(psycopg.Connection[Any]):
        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            try:
                return super().wait(gen, interval=interval, timeout=timeout or request_timeout_s)
            except errors._WaitTimeout:
                where = f"{self.pgconn.host.decode()}:{self.pgconn.port.decode()}"
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"no answer from {where} within {request_timeout_s} s (client request timeout): connection closed"
                ) from None

    BoundedConnection.__name__ = f"BoundedConnection_{request_timeout_s:g}s"
    return BoundedConnection


@dataclass(frozen=True)
class RedisEndpoint:
    host: str
    port: int
    password: Secret
    db: int = 0
    # In-transit encryption (ElastiCache's TransitEncryptionEnabled): the client speaks TLS and verifies the
    # server's certificate and name against `ca_file` ("" means the system's store).
    tls: bool = False
    ca_file: str = ""

    def url(self, *, reveal: bool = False) -> str:
        password = quote(self.password.reveal(), safe="") if reveal else "***"
        # "default" is the user Redis 6+ assigns to requirepass; redis-cli rejects an empty user name.
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://default:{password}@{self.host}:{self.port}/{self.db}"

    def tls_kwargs(self) -> dict[str, Any]:
        if not self.tls:
            return {}
        return {
            "ssl": True,
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
            "ssl_ca_certs": self.ca_file or None,
        }

    def client(self, **kwargs: Any) -> Any:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        # redis-py 8 retries a failed command 3 times with backoff, seconds per call against a dead server,
        # so a cache outage would stall every read. One quick retry rides out a dropped connection.
        retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)
        params = {
            "password": self.password.reveal(),
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "retry": retry,
            **self.tls_kwargs(),
            **kwargs,
        }
        return redis.Redis(host=self.host, port=self.port, db=self.db, **params)


@dataclass(frozen=True)
class AwsResources:
    """What the unit needs to exist on the AWS side before any scenario runs."""

    exports_bucket: str
    db_secret_id: str
    kms_key_id: str = ""


@dataclass(frozen=True)
class AwsEndpoint:
    # Empty url means "the SDK's default": real AWS, credentials from its usual chain.
    url: str
    region: str
    access_key_id: str
    secret_access_key: Secret
    # Where the Lambda API is served when not at `url` (the embedded backend's local Lambda runtime).
    lambda_url: str = ""

    def client(self, service: str, **kwargs: Any) -> Any:
        import boto3

        params: dict[str, Any] = {"region_name": self.region}
        endpoint = self.lambda_url if service == "lambda" and self.lambda_url else self.url
        if endpoint:
            params["endpoint_url"] = endpoint
        if self.access_key_id:
            params["aws_access_key_id"] = self.access_key_id
            params["aws_secret_access_key"] = self.secret_access_key.reveal()
        params.update(kwargs)
        return boto3.client(service, **params)


@dataclass(frozen=True)
class StackEndpoints:
    backend: str
    proxy: PostgresEndpoint
    direct: PostgresEndpoint
    redis: RedisEndpoint
    aws: AwsEndpoint
    resources: AwsResources
    # Free-form facts for `harness status` and reports (versions, sizing, cgroup state); no secrets.
    facts: dict[str, Any] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The variables `harness env` exports; the same names for every backend."""
        env = {
            "DATABASE_URL": self.proxy.url(reveal=True),
            "DATABASE_DIRECT_URL": self.direct.url(reveal=True),
            "REDIS_URL": self.redis.url(reveal=True),
            "AWS_DEFAULT_REGION": self.aws.region,
            "HARNESS_EXPORTS_BUCKET": self.resources.exports_bucket,
            "HARNESS_DB_SECRET_ID": self.resources.db_secret_id,
        }
        if self.aws.url:
            env["AWS_ENDPOINT_URL"] = self.aws.url
        if self.aws.lambda_url:
            # boto3 and the AWS CLI prefer a service's own endpoint variable to AWS_ENDPOINT_URL.
            env["AWS_ENDPOINT_URL_LAMBDA"] = self.aws.lambda_url
        ca_bundles = {e.sslrootcert for e in (self.proxy, self.direct) if e.sslrootcert}
        ca_bundles |= {self.redis.ca_file} if self.redis.ca_file else set()
        if len(ca_bundles) == 1:
            # For clients that take the bundle separately: `redis-cli -u "$REDIS_URL" --tls --cacert ...`.
            env["HARNESS_CA_BUNDLE"] = ca_bundles.pop()
        if self.aws.access_key_id:
            env["AWS_ACCESS_KEY_ID"] = self.aws.access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = self.aws.secret_access_key.reveal()
        return env

    def to_json(self) -> dict[str, Any]:
        def plain(obj: Any) -> Any:
            if isinstance(obj, Secret):
                return obj.reveal()
            if isinstance(obj, dict):
                return {k: plain(v) for k, v in obj.items()}
            if isinstance(obj, list | tuple):
                return [plain(v) for v in obj]
            return obj

        raw = {
            "backend": self.backend,
            "proxy": {**asdict(self.proxy), "password": self.proxy.password},
            "direct": {**asdict(self.direct), "password": self.direct.password},
            "redis": {**asdict(self.redis), "password": self.redis.password},
            "aws": {**asdict(self.aws), "secret_access_key": self.aws.secret_access_key},
            "resources": asdict(self.resources),
            "facts": self.facts,
        }
        return {"schema_version": SCHEMA_VERSION, **plain(raw)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackEndpoints:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise EndpointFileError(f"endpoint file schema_version is {version!r}, this harness reads {SCHEMA_VERSION}")
        try:

            def pg(d: dict[str, Any]) -> PostgresEndpoint:
                return PostgresEndpoint(
                    d["host"],
                    int(d["port"]),
                    d["user"],
                    Secret(d["password"]),
                    d["dbname"],
                    str(d.get("sslmode", "")),
                    str(d.get("sslrootcert", "")),
                )

            return cls(
                backend=data["backend"],
                proxy=pg(data["proxy"]),
                direct=pg(data["direct"]),
                redis=RedisEndpoint(
                    data["redis"]["host"],
                    int(data["redis"]["port"]),
                    Secret(data["redis"]["password"]),
                    int(data["redis"].get("db", 0)),
                    bool(data["redis"].get("tls", False)),
                    str(data["redis"].get("ca_file", "")),
                ),
                aws=AwsEndpoint(
                    data["aws"]["url"],
                    data["aws"]["region"],
                    data["aws"]["access_key_id"],
                    Secret(data["aws"]["secret_access_key"]),
                    str(data["aws"].get("lambda_url", "")),
                ),
                resources=AwsResources(**data["resources"]),
                facts=dict(data.get("facts", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EndpointFileError(f"endpoint file is missing or has a malformed field: {exc}") from None


class EndpointFileError(ValueError):
    pass


ENDPOINTS_FILE = "endpoints.json"


def endpoints_path(state_dir: Path) -> Path:
    return state_dir / ENDPOINTS_FILE


def write_private_file(path: Path, text: str) -> None:
    """Write atomically with mode 0600: a reader never sees half a file, nobody else reads secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_endpoints(state_dir: Path, endpoints: StackEndpoints) -> Path:
    path = endpoints_path(state_dir)
    write_private_file(path, json.dumps(endpoints.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def load_endpoints(state_dir: Path) -> StackEndpoints | None:
    path = endpoints_path(state_dir)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EndpointFileError(f"{path} is not valid JSON ({exc}); run `harness down` and `harness up`") from None
    return StackEndpoints.from_json(data)
