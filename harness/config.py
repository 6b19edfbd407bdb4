"""Typed harness configuration, resolved once: argument > environment > file > default.

Nothing here is read at import time: callers build a Settings with `resolve_settings()` and pass it
down. The file is `harness.toml` (table `[harness]`) found in the working directory or an ancestor,
or the path named by HARNESS_CONFIG.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.inputfiles import InputFileError, parse_input_toml, read_input_text
from harness.sizing import (
    LAMBDA_FUNCTIONS,
    STORAGE_TYPES,
    UnknownProfileError,
    cache_node_type,
    db_instance_class,
    storage_sizing,
)
from harness.spec.model import DEFAULT_SPEC_FILE, Scalar, SpecError, UnitSpec, load_unit_spec, parse_uses

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
class UnitValues:
    """The unit's values from fixtures/unit.yaml (its design document), typed for the code that applies them:
    sizing, the Lambda deployment, the thresholds' levels and the cost model read these, never their own copy."""

    spec_file: Path
    region: str
    db_instance_class: str
    cache_node_type: str
    storage_type: str
    allocated_storage_gib: int
    lambda_memory_mb: Mapping[str, int]
    lambda_timeouts_s: Mapping[str, int]
    free_tier: Mapping[str, float]
    backup_retention_days: int
    # Every fact's value by name, for the files that cite a fact ({unit:FACT} in thresholds.yaml).
    facts: Mapping[str, Scalar]
    # Facts chosen on the command line or in HARNESS_SPEC_USE for this run.
    overridden: tuple[str, ...] = ()


def _typed(spec: UnitSpec, name: str, kind: type) -> Any:
    value = spec.value(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise SpecError(f"{spec.path}: {name} must be a {kind.__name__}, got {value!r}")
    return value


def unit_values(spec: UnitSpec) -> UnitValues:
    """Resolve the facts the harness applies; a missing or mistyped one is refused with its name."""
    free_tier_names = [n.removeprefix("free_tier.") for n in spec.facts if n.startswith("free_tier.")]
    return UnitValues(
        spec_file=spec.path,
        region=_typed(spec, "region", str),
        db_instance_class=_typed(spec, "db.instance_class", str),
        cache_node_type=_typed(spec, "cache.node_type", str),
        storage_type=_typed(spec, "db.storage_type", str),
        allocated_storage_gib=_typed(spec, "db.allocated_storage_gb", int),
        lambda_memory_mb={f: _typed(spec, f"lambda.{f}.memory_mb", int) for f in LAMBDA_FUNCTIONS},
        lambda_timeouts_s={f: _typed(spec, f"lambda.{f}.timeout_s", int) for f in LAMBDA_FUNCTIONS},
        free_tier={n: _typed(spec, f"free_tier.{n}", float) for n in free_tier_names},
        backup_retention_days=_typed(spec, "db.backup_retention_days", int),
        facts={name: value for name, f in spec.facts.items() if (value := f.value) is not None},
        overridden=tuple(name for name, f in spec.facts.items() if f.overridden),
    )


@functools.cache
def shipped_unit() -> UnitValues:
    """fixtures/unit.yaml as shipped, read on first use and then kept (never at import time)."""
    try:
        return unit_values(load_unit_spec(DEFAULT_SPEC_FILE))
    except SpecError as exc:
        raise ConfigError(str(exc)) from None


def _unit_default(name: str) -> Any:
    return field(default_factory=lambda: getattr(shipped_unit(), name))


@dataclass(frozen=True)
class Settings:
    backend: str = "embedded"
    # Relative paths are taken from the directory of the config file (or the working directory).
    state_dir: Path = Path(".harness")
    # The unit's shape defaults to fixtures/unit.yaml's values (see `unit`).
    db_instance_class: str = _unit_default("db_instance_class")
    cache_node_type: str = _unit_default("cache_node_type")
    postgres_port: int = 15432
    proxy_port: int = 16432
    redis_port: int = 16379
    aws_port: int = 14566
    # The local Lambda runtime (Invoke API) and the account's concurrent-executions limit it enforces.
    lambda_port: int = 14567
    lambda_concurrency: int = 10
    database: str = "dbunit"
    master_user: str = "dbunit_admin"
    region: str = _unit_default("region")
    # Where every backup is copied (the document's cross-region backup), and the port a restored
    # instance listens on (0: a free one, chosen at restore time).
    backup_copy_region: str = "us-west-2"
    restore_port: int = 0
    # The network drill's fault-injecting proxies in front of the proxy (PostgreSQL) and Redis (0: free ports).
    fault_pg_port: int = 0
    fault_redis_port: int = 0
    # "auto": cap PostgreSQL with a cgroup where the machine allows and report when it does not;
    # "require": refuse to start without the cap; "off": never try.
    cgroups: str = "auto"
    # Burstable CPU and gp2 storage. "drained" runs the unit as it is after hours of load and a
    # failover: the cache node at its baseline, RDS at full speed billing surplus, the volume at its
    # baseline IOPS with a cold page cache. "live": the caps follow the credit ledgers from a rested unit.
    # "off" (the default until the sign-off runs a drained pass beside the fresh one): full CPU and disk,
    # the ledgers still recorded and the modelled day still judged, and the report states the mode.
    cpu_credits: str = "off"
    # unit.yaml's db.storage_type: the document names none; gp2 is what the free tier covers.
    storage_type: str = _unit_default("storage_type")
    allocated_storage_gib: int = _unit_default("allocated_storage_gib")
    # `harness signoff` runs a drained pass after the fresh one (vector search, cache hit rate, pooling at the
    # design concurrency on a unit restarted drained), each of its load steps capped at drained_step_cap_s.
    # Off by default: it lengthens the sign-off by a second pass and fails the vector-search p95 while the data
    # is read back at the volume's baseline IOPS (the worst case after a failover): ask for it with --drained
    # or "on".
    signoff_drained: bool = False
    drained_step_cap_s: float = 60.0
    # The live ledger of the cache node starts from this balance when no saved ledger exists (None: a
    # rested node, 288 credits). A small figure lets a run watch the node fall to its baseline in seconds.
    cpu_credit_start_balance: float | None = None
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
    # The unit spec and facts chosen for this run ("FACT=VALUE,FACT=VALUE", like `harness spec --use`).
    spec_file: Path | None = None
    spec_use: str = ""
    unit: UnitValues = field(default_factory=shipped_unit, compare=False)
    config_file: Path | None = field(default=None, compare=False)

    def unit_spec(self) -> UnitSpec:
        """The unit spec this run applies (spec_file with spec_use's choices), for the code that reads facts."""
        try:
            spec = load_unit_spec(self.spec_file or DEFAULT_SPEC_FILE)
            return spec.with_uses(parse_uses([p for p in self.spec_use.split(",") if p.strip()]))
        except SpecError as exc:
            raise ConfigError(f"spec_file/spec_use (HARNESS_SPEC_FILE, HARNESS_SPEC_USE): {exc}") from None

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
        for name in ("restore_port", "fault_pg_port", "fault_redis_port"):
            value = getattr(self, name)
            if value and not 1024 <= value <= 65535:
                raise ConfigError(f"{name} must be 0 (a free port) or between 1024 and 65535, got {value}")
        if self.backup_copy_region == self.region:
            raise ConfigError(f"backup_copy_region must differ from region ({self.region}): it is the copy's region")
        if not 1 <= self.lambda_concurrency <= 1000:
            raise ConfigError(f"lambda_concurrency must be between 1 and 1000, got {self.lambda_concurrency}")
        if self.drained_step_cap_s <= 0:
            raise ConfigError(f"drained_step_cap_s must be positive, got {self.drained_step_cap_s}")
        if self.cpu_credit_start_balance is not None and self.cpu_credit_start_balance < 0:
            raise ConfigError(f"cpu_credit_start_balance must not be negative, got {self.cpu_credit_start_balance}")
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
    "fault_pg_port": int,
    "fault_redis_port": int,
    "cgroups": str,
    "cpu_credits": str,
    "storage_type": str,
    "allocated_storage_gib": int,
    "signoff_drained": bool,
    "drained_step_cap_s": float,
    "cpu_credit_start_balance": float,
    "startup_timeout_s": float,
    "tls": str,
    "postgres_os_user": str,
    "external_config": Path,
    "allow_destructive": bool,
    "workload": Path,
    "spec_file": Path,
    "spec_use": str,
}
# Settings whose default is the unit spec's value (Settings field -> UnitValues attribute of the same name).
_FROM_UNIT = ("region", "db_instance_class", "cache_node_type", "storage_type", "allocated_storage_gib")

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
        data = parse_input_toml(read_input_text(path, "the configuration file"), path, "the configuration file")
    except InputFileError as exc:
        raise ConfigError(str(exc)) from None
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
    for name in ("external_config", "workload", "spec_file"):
        path = values.get(name)
        if path is not None and not path.is_absolute():
            values[name] = (base / path).resolve()
    unit = _resolve_unit(values.get("spec_file"), values.get("spec_use", ""))
    for name in _FROM_UNIT:
        values.setdefault(name, getattr(unit, name))
    return Settings(**values, unit=unit, config_file=config_file)


def _resolve_unit(spec_file: Path | None, spec_use: str) -> UnitValues:
    if spec_file is None and not spec_use.strip():
        return shipped_unit()
    pairs = [p for p in spec_use.split(",") if p.strip()]
    try:
        return unit_values(load_unit_spec(spec_file or DEFAULT_SPEC_FILE).with_uses(parse_uses(pairs)))
    except SpecError as exc:
        raise ConfigError(f"spec_file/spec_use (HARNESS_SPEC_FILE, HARNESS_SPEC_USE): {exc}") from None


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    out = {}
    for f in fields(settings):
        if f.name == "unit":
            continue
        value = getattr(settings, f.name)
        out[f.name] = str(value) if isinstance(value, Path) else value
    return out


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
