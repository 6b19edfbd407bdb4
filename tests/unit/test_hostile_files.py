"""Hostile input files, generated, for every file the CLI reads from a user: harness.toml, the external
backend's TOML, workload files, team data specs, the unit spec (fixtures/unit.yaml), the monthly model,
threshold overrides. Wrong types, huge strings, SQL metacharacters, unicode, control characters, invalid
UTF-8, deep nesting: each reader refuses with its own error naming the file, in a bounded message (never a
traceback, never the input echoed back), and the CLI commands that read them exit non-zero with that
message on stderr. The readers are pure; commands that also touch the stack are swept in
tests/integration/test_hostile_input.py with counts before and after."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.backends.external import load_external_config
from harness.capacity.recommend import CapacityInputError, load_capacity_model
from harness.capacity.results import read_result
from harness.cli.main import main as harness_main
from harness.config import ConfigError, resolve_settings
from harness.data.spec import DataSpecError, load_data_spec
from harness.measure.results import ResultsError, load_results
from harness.model.credit_day import TrafficError, load_traffic
from harness.model.projection import ModelError, load_model
from harness.paths import FIXTURES_DIR
from harness.spec.model import SpecError, load_unit_spec
from harness.thresholds.loading import load_thresholds
from harness.thresholds.problems import ThresholdConfigError
from harness.workload.file import WorkloadError, load_workload
from harness.workload.target import load_cache_reads, load_vector_target

SWEEP = settings(
    max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)
# A refusal says what is wrong and what to do; it does not hand back a megabyte of the input.
MAX_MESSAGE = 2000
HUGE = "x" * 20_000

SQL_AND_UNICODE = [
    "1; DROP TABLE users; --",
    "' OR '1'='1",
    "$$; DROP SCHEMA app CASCADE; $$",
    "Robert'); DROP TABLE audit_log;--",
    "\x00",
    "\x1b[31mred",
    "²",
    "٤٢",
    "\u202e24",
    "🙂",
    "../../etc/passwd",
    "${HOME}",
    "1e309",
    "-0",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=200),
    st.sampled_from(SQL_AND_UNICODE),
)


def hostile_values(keys: list[str]) -> st.SearchStrategy[Any]:
    """Scalars, lists and mappings, the mappings keyed now and then by names the reader knows."""
    names = st.one_of(st.sampled_from(keys), st.text(max_size=12)) if keys else st.text(max_size=12)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
        max_leaves=14,
    )


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


# -- serialising generated documents ---------------------------------------------------------------


def as_json(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False)


def as_yaml(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def _toml_value(value: Any) -> str:
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return (
        "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    )


def as_toml(document: Any) -> str:
    if not isinstance(document, dict):
        return f"value = {_toml_value(document)}\n"
    lines = [f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(v)}" for k, v in document.items()]
    return "\n".join(lines) + "\n"


# -- the readers ---------------------------------------------------------------------------------------


class Reader:
    def __init__(
        self,
        name: str,
        suffix: str,
        read: Callable[[Path], Any],
        error: type[Exception],
        keys: list[str],
        serialise: Callable[[Any], str] = as_yaml,
    ) -> None:
        self.name, self.suffix, self.read, self.error = name, suffix, read, error
        self.keys, self.serialise = keys, serialise

    def __repr__(self) -> str:
        return self.name


def _config(path: Path) -> Any:
    return resolve_settings(environ={"HARNESS_CONFIG": str(path)}, cwd=path.parent)


READERS = [
    Reader(
        "harness.toml",
        ".toml",
        _config,
        ConfigError,
        ["harness", "backend", "tls", "state_dir", "proxy_port", "workload", "external_config", "db_instance_class"],
        as_toml,
    ),
    Reader(
        "external backend TOML",
        ".toml",
        load_external_config,
        ConfigError,
        ["postgres", "redis", "aws", "host", "port", "sslmode", "ca_bundle", "user", "dbname", "tls", "proxy"],
        as_toml,
    ),
    Reader("workload file", ".yaml", load_workload, WorkloadError, ["statements", "sql", "weight", "params", "name"]),
    Reader(
        "workload file (vector search)",
        ".yaml",
        load_vector_target,
        WorkloadError,
        ["vector_search", "table", "column", "key", "operator", "filter_column", "k"],
    ),
    Reader(
        "workload file (cache)", ".yaml", load_cache_reads, WorkloadError, ["cache", "reads", "key", "ttl_s", "sql"]
    ),
    Reader(
        "team data spec",
        ".yaml",
        load_data_spec,
        DataSpecError,
        ["tables", "name", "rows", "columns", "gen", "seed", "ref", "dim", "weights", "choices", "nulls"],
    ),
    Reader(
        "unit spec (fixtures/unit.yaml)",
        ".yaml",
        load_unit_spec,
        SpecError,
        ["schema_version", "document", "facts", "kind", "use", "why", "claims", "value"],
    ),
    Reader(
        "monthly model (projection)",
        ".yaml",
        load_model,
        ModelError,
        ["deployment", "lambda_invocations_per_month", "free_tier", "prices_usd", "data_export"],
    ),
    Reader(
        "monthly model (capacity)",
        ".yaml",
        load_capacity_model,
        CapacityInputError,
        ["instance_prices_usd_per_hour", "capacity_target", "deployment", "documents", "rate_per_s"],
    ),
    Reader("monthly model (traffic)", ".yaml", load_traffic, TrafficError, ["traffic", "hourly_shape"]),
    Reader(
        "threshold override",
        ".yaml",
        lambda path: load_thresholds(FIXTURES_DIR / "thresholds.yaml", override_files=[path]),
        ThresholdConfigError,
        ["thresholds", "id", "metric", "warning", "critical", "unit"],
    ),
    Reader(
        "results.json (report render, compare)",
        ".json",
        load_results,
        ResultsError,
        ["schema_version", "run", "measurements", "kind", "unit", "entries"],
        as_json,
    ),
    Reader(
        "capacity.json (capacity report, table)",
        ".json",
        read_result,
        CapacityInputError,
        ["schema_version", "plan", "steps", "instance_class", "rate", "documents"],
        as_json,
    ),
]


def refused(reader: Reader, path: Path) -> None:
    """The reader either accepts the file or refuses it with its own error naming the file, briefly."""
    try:
        reader.read(path)
    except reader.error as exc:
        message = str(exc)
        assert path.name in message, f"{reader}: the message does not name the file: {message[:300]}"
        assert len(message) <= MAX_MESSAGE + len(str(path)), f"{reader}: {len(message)} characters: {message[:300]}"
        assert "Traceback" not in message


def documents(reader: Reader) -> st.SearchStrategy[bytes]:
    values = hostile_values(reader.keys)
    top_level = st.dictionaries(st.sampled_from(reader.keys), values, min_size=1, max_size=4)
    return st.one_of(
        st.text(max_size=400).map(str.encode),
        st.builds(lambda v: reader.serialise(v).encode(), values),
        st.builds(lambda v: reader.serialise(v).encode(), top_level),
        st.binary(max_size=200),
    )


HANDWRITTEN: list[bytes] = [
    b"\xff\xfe\x00garbage",  # not UTF-8
    b"\xef\xbb\xbf" + b"[harness]\n",  # a BOM
    b"a: \x01\n",  # a control character
    ("k: " + HUGE).encode(),
    b"",
    b"k: " + b"9" * 5000,  # past Python's limit on integer digits
    b"k = " + b"9" * 5000,
    b"k: 2026-13-45",  # a timestamp YAML cannot construct
    b"k: !!python/object:os.system x",
]


def too_deep(reader: Reader) -> bytes:
    """Nested past the parser's recursion (PyYAML gives up near 600 levels; deeper only costs seconds)."""
    if reader.suffix == ".toml":
        return b"a = " + b"[" * 5000 + b"]" * 5000
    return b"[" * (5000 if reader.suffix == ".json" else 600) + b"]" * (5000 if reader.suffix == ".json" else 600)


@pytest.mark.parametrize("reader", READERS, ids=repr)
def test_every_input_file_reader_refuses_hostile_files_naming_the_file(tmp_path_factory, reader):
    @SWEEP
    @given(content=documents(reader))
    @example(content=reader.serialise({reader.keys[0]: nested(150)}).encode())
    @example(content=reader.serialise({reader.keys[0]: HUGE}).encode())
    @example(content=reader.serialise(list(range(2_000))).encode())
    def sweep(content: bytes) -> None:
        path = tmp_path_factory.mktemp("hostile") / f"input{reader.suffix}"
        path.write_bytes(content)
        refused(reader, path)

    sweep()
    for content in [*HANDWRITTEN, too_deep(reader)]:
        path = tmp_path_factory.mktemp("hostile") / f"input{reader.suffix}"
        path.write_bytes(content)
        refused(reader, path)


def test_a_missing_file_is_refused_naming_it(tmp_path):
    for reader in READERS:
        if reader.name == "harness.toml":
            continue
        with pytest.raises(reader.error) as refusal:
            reader.read(tmp_path / "missing.yaml")
        assert "missing.yaml" in str(refusal.value), reader


# -- through the CLI: commands that read the file before they touch anything --------------------------------


def run_cli(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    code = harness_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def cli_refused(code: int, out: str, err: str, path: Path) -> None:
    assert code != 0, f"accepted: {out[-300:]}"
    assert "Traceback" not in out + err
    assert path.name in err, err[-500:]
    assert len(err) <= MAX_MESSAGE + 4 * len(str(path)), f"{len(err)} characters on stderr"


CLI_CASES = {
    # command line (FILE is replaced by the hostile file), the reader that decides whether it is refused
    "harness status (harness.toml)": (["status"], READERS[0]),
    "harness status --backend external": (["status", "--backend", "external"], READERS[1]),
    "harness workload pins": (["workload", "pins", "FILE"], READERS[2]),
    "harness spec show --spec": (["spec", "show", "--spec", "FILE"], READERS[6]),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_the_cli_refuses_hostile_input_files_with_a_message_and_a_non_zero_exit(
    tmp_path_factory, monkeypatch, capsys, case
):
    argv_template, reader = CLI_CASES[case]
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("HARNESS_STATE_DIR", str(state))
    for name in ("HARNESS_CONFIG", "HARNESS_EXTERNAL_CONFIG", "HARNESS_BACKEND"):
        monkeypatch.delenv(name, raising=False)

    @SWEEP
    @given(content=documents(reader))
    @example(content=b"\xff\xfe\x00garbage")
    @example(content=too_deep(reader))
    @example(content=reader.serialise({reader.keys[0]: HUGE}).encode())
    def sweep(content: bytes) -> None:
        path = tmp_path_factory.mktemp("hostile") / f"input{reader.suffix}"
        path.write_bytes(content)
        try:
            reader.read(path)
            return  # a file the reader accepts is not hostile to it
        except reader.error:
            pass
        if reader.name == "harness.toml":
            monkeypatch.setenv("HARNESS_CONFIG", str(path))
        elif reader.name == "external backend TOML":
            monkeypatch.setenv("HARNESS_EXTERNAL_CONFIG", str(path))
        argv = [str(path) if arg == "FILE" else arg for arg in argv_template]
        cli_refused(*run_cli(argv, capsys), path)

    sweep()


@pytest.mark.parametrize(
    "argv",
    [
        ["workload", "replay", "w.yaml", "--rate", "nan", "--duration", "1"],
        ["workload", "replay", "w.yaml", "--rate", "1", "--duration", "inf"],
        ["capacity", "table", "run", "--target-rate", "nan"],
        ["capacity", "table", "run", "--target-rate", "-1"],
        ["capacity", "table", "run", "--target-size", "0"],
        ["capacity", "table", "run", "--target-size", "1; DROP TABLE users"],
    ],
    ids=" ".join,
)
def test_numeric_arguments_refuse_nan_infinity_and_non_positive_values(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        harness_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "expected a" in err and "Traceback" not in err


def test_spec_lint_refuses_a_design_document_that_is_not_text_and_an_overlong_use(tmp_path, capsys):
    document = tmp_path / "design.md"
    document.write_bytes(b"\xff\xfe# not UTF-8")
    code, out, err = run_cli(["spec", "lint", "--document", str(document)], capsys)
    cli_refused(code, out, err, document)
    assert "not UTF-8" in err
    code, out, err = run_cli(["spec", "show", "--use", "x" * 50_000 + "=1"], capsys)
    assert code != 0 and "Traceback" not in err and len(err) < MAX_MESSAGE + 1000, len(err)


def _npy(array: Any, allow_pickle: bool = False) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=allow_pickle)
    return buffer.getvalue()


def _hostile_npy() -> dict[str, bytes]:
    import numpy as np

    with_nan = np.ones((3, 4), dtype=np.float32)
    with_nan[1, 2] = np.nan
    return {
        "empty": b"",
        "text": b"1; DROP TABLE users; --\n",
        "truncated": _npy(np.ones((10, 4), dtype=np.float32))[:100],
        "pickled objects": _npy(np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "integers": _npy(np.ones((3, 4), dtype=np.int64)),
        "three dimensions": _npy(np.ones((3, 4, 2), dtype=np.float32)),
        "nan": _npy(with_nan),
    }


@pytest.mark.parametrize("case", sorted(_hostile_npy()))
def test_hostile_npy_query_files_are_refused_naming_the_file(tmp_path, case):
    from harness.data.column_truth import read_queries
    from harness.data.vectors import VectorDataError

    path = tmp_path / "queries.npy"
    path.write_bytes(_hostile_npy()[case])
    with pytest.raises(VectorDataError) as refused:
        read_queries(path)
    assert str(path) in str(refused.value) and len(str(refused.value)) < MAX_MESSAGE


@pytest.mark.parametrize("case", sorted(set(_hostile_npy()) - {"nan"}))
def test_hostile_npy_embedding_files_are_refused_naming_the_file(tmp_path, case):
    from harness.data.vectors import NpyVectors, VectorDataError

    path = tmp_path / "embeddings.npy"
    path.write_bytes(_hostile_npy()[case])
    # NaN rows are refused as they are read, chunk by chunk (the file is memory-mapped, never loaded whole).
    with pytest.raises(VectorDataError) as refused:
        NpyVectors(path, n_queries=1)
    assert str(path) in str(refused.value) and len(str(refused.value)) < MAX_MESSAGE
