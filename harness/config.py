"""Typed harness configuration, resolved once: argument > environment > file > default.

Nothing here is read at import time: callers build a Settings with `resolve_settings()` and pass it
down. The file is `harness.toml` (table `[harness]`) found in the working directory or an ancestor,
or the path named by HARNESS_CONFIG.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.sizing import STORAGE_TYPES, UnknownProfileError, cache_node_type, db_instance_class, storage_sizing

CONFIG_FILE_NAME = "harness.toml"
ENV_PREFIX = "HARNESS_"
BACKENDS = ("embedded", "compose", "external")
CGROUP_MODES = ("auto", "off", "require")
CPU_CREDIT_MODES = ("off", "live", "drained")
# required: the proxy and Redis refuse plain clients (RDS's rds.force_ssl=1 default, RDS Proxy's Require TLS,
# ElastiCache in-transit encryption); optional: TLS offered where a port can serve both; off: plain.
TLS_MODES = ("required", "optional", "off")


class ConfigError(ValueError):
    """Configuration that cannot be used; the message names the source and what to change."""


@dataclass(frozen=True)
class Settings:
    backend: str = "embedded"
    # Relative paths are taken from the directory of the config file (or the working directory).
    state_dir: Path = Path(".harness")
    db_instance_class: str = "db.t3.micro"
    cache_node_type: str = "cache.t3.micro"
    postgres_port: int = 15432
    proxy_port: int = 16432
    redis_port: int = 16379
    aws_port: int = 14566
    # The local Lambda runtime (Invoke API) and the account's concurrent-executions limit it enforces.
    lambda_port: int = 14567
    lambda_concurrency: int = 10
    database: str = "dbunit"
    master_user: str = "dbunit_admin"
    region: str = "us-east-2"
    # Where every backup is copied (the document's cross-region backup), and the port a restored
    # instance listens on (0: a free one, chosen at restore time).
    backup_copy_region: str = "us-west-2"
    restore_port: int = 0
    # "auto": cap PostgreSQL with a cgroup where the machine allows and report when it does not;
    # "require": refuse to start without the cap; "off": never try.
    cgroups: str = "auto"
    # Burstable CPU and gp2 storage (issue 15). "drained" runs the unit as it is after hours of load and a
    # failover: the cache node at its baseline, RDS at full speed billing surplus, the volume at its
    # baseline IOPS with a cold page cache. "live": the caps follow the credit ledgers from a rested unit.
    # "off" (the default until the sign-off runs a drained pass beside the fresh one): full CPU and disk,
    # the ledgers still recorded and the modelled day still judged, and the report states the mode.
    cpu_credits: str = "off"
    # Which EBS type the free tier's 20 GB gets is not settled in what we found: gp2 is the cautious one.
    storage_type: str = "gp2"
    allocated_storage_gib: int = 20
    startup_timeout_s: float = 60.0
    tls: str = "required"
    # The unprivileged account PostgreSQL runs as when the harness itself runs as root.
    postgres_os_user: str = "dbunit"
    # The TOML file that describes a deployment the harness does not own (backend "external").
    external_config: Path | None = None
    # Destructive scenarios (fault drills, deleting seeded users) refuse to run against an external
    # deployment unless this is set for the run.
    allow_destructive: bool = False
    # A team's workload file (harness/workload): its `vector_search:` section points the vector scenarios and
    # the Locust vector user at the team's table and column; None means the built-in application.
    workload: Path | None = None
    config_file: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.cgroups not in CGROUP_MODES:
            raise ConfigError(f"cgroups must be one of {', '.join(CGROUP_MODES)}, got {self.cgroups!r}")
        if self.cpu_credits not in CPU_CREDIT_MODES:
            raise ConfigError(f"cpu_credits must be one of {', '.join(CPU_CREDIT_MODES)}, got {self.cpu_credits!r}")
        if self.storage_type not in STORAGE_TYPES:
            raise ConfigError(f"storage_type must be one of {', '.join(STORAGE_TYPES)}, got {self.storage_type!r}")
        if self.tls not in TLS_MODES:
            raise ConfigError(f"tls must be one of {', '.join(TLS_MODES)}, got {self.tls!r}")
        try:
            db_instance_class(self.db_instance_class)
            cache_node_type(self.cache_node_type)
            storage_sizing(self.storage_type, self.allocated_storage_gib)
        except UnknownProfileError as exc:
            raise ConfigError(str(exc)) from None
        port_names = ("postgres_port", "proxy_port", "redis_port", "aws_port", "lambda_port")
        ports = {name: getattr(self, name) for name in port_names}
        for name, port in ports.items():
            if not 1024 <= port <= 65535:
                raise ConfigError(f"{name} must be between 1024 and 65535, got {port}")
        if len(set(ports.values())) != len(ports):
            raise ConfigError(f"ports must differ: {ports}")
        if self.restore_port and not 1024 <= self.restore_port <= 65535:
            raise ConfigError(
                f"restore_port must be 0 (a free port) or between 1024 and 65535, got {self.restore_port}"
            )
        if self.backup_copy_region == self.region:
            raise ConfigError(f"backup_copy_region must differ from region ({self.region}): it is the copy's region")
        if not 1 <= self.lambda_concurrency <= 1000:
            raise ConfigError(f"lambda_concurrency must be between 1 and 1000, got {self.lambda_concurrency}")
        if self.startup_timeout_s <= 0:
            raise ConfigError(f"startup_timeout_s must be positive, got {self.startup_timeout_s}")


_FIELD_TYPES: dict[str, type] = {
    "backend": str,
    "state_dir": Path,
    "db_instance_class": str,
    "cache_node_type": str,
    "postgres_port": int,
    "proxy_port": int,
    "redis_port": int,
    "aws_port": int,
    "lambda_port": int,
    "lambda_concurrency": int,
    "database": str,
    "master_user": str,
    "region": str,
    "backup_copy_region": str,
    "restore_port": int,
    "cgroups": str,
    "cpu_credits": str,
    "storage_type": str,
    "allocated_storage_gib": int,
    "startup_timeout_s": float,
    "tls": str,
    "postgres_os_user": str,
    "external_config": Path,
    "allow_destructive": bool,
    "workload": Path,
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind = _FIELD_TYPES[name]
    try:
        if kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
                return raw.strip().lower() in _TRUE
            raise ValueError
        if kind is Path:
            return Path(str(raw)).expanduser()
        if not isinstance(raw, str):
            raise ValueError
        return raw
    except ValueError:
        expected = "a boolean (true/false, 1/0)" if kind is bool else kind.__name__
        raise ConfigError(f"{source}: {name} must be {expected}, got {raw!r}") from None


def find_config_file(start: Path, environ: Mapping[str, str]) -> Path | None:
    named = environ.get(ENV_PREFIX + "CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"HARNESS_CONFIG names {path}, which is not a file")
        return path
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("harness", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [harness] must be a table")
    unknown = sorted(set(table) - set(_FIELD_TYPES))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELD_TYPES))}")
    return {name: _coerce(name, value, str(path)) for name, value in table.items()}


def resolve_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Build Settings from arguments (overrides, None meaning unset), then HARNESS_* variables,
    then harness.toml, then defaults."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    config_file = find_config_file(cwd, environ)
    values: dict[str, Any] = _read_config_file(config_file) if config_file else {}
    for name in _FIELD_TYPES:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = _coerce(name, environ[env_name], f"environment variable {env_name}")
    for name, value in (overrides or {}).items():
        if name not in _FIELD_TYPES:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _coerce(name, value, "argument")
    base = config_file.parent if config_file else cwd
    state_dir = values.get("state_dir", Settings.state_dir)
    values["state_dir"] = (base / state_dir).resolve() if not state_dir.is_absolute() else state_dir
    for name in ("external_config", "workload"):
        path = values.get(name)
        if path is not None and not path.is_absolute():
            values[name] = (base / path).resolve()
    return Settings(**values, config_file=config_file)


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    out = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        out[f.name] = str(value) if isinstance(value, Path) else value
    return out


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
