"""A team's data, described instead of dumped: a YAML data spec turned into rows for binary COPY.

The spec names tables (in load order), row counts and one generator per column; columns it leaves out get
their defaults (identities, `DEFAULT now()`). Draws come from `block_rng(seed, table, column, chunk)`, so the
same spec always yields the same bytes. Foreign keys point at another table's `serial` column, uniformly or
heavy-tailed (Zipf: a few owners hold most rows, as real ownership does). Vector columns come from the
clustered generator or an embeddings file; their table's `serial` key starting at 1 is what the ground truth
stores, so recall is scored against it. Example: fixtures/example_app/data.yaml.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.tables import TableData
from harness.data.vectors import (
    DEFAULT_CHUNK_ROWS,
    DOC_ID_BASE,
    ClusteredVectors,
    VectorDataError,
    VectorSource,
    block_rng,
    check_dim,
    open_vector_file,
)
from harness.inputfiles import InputFileError, parse_input_yaml, read_input_text

GENERATORS = (
    "serial",
    "int",
    "float",
    "normal",
    "lognormal",
    "choice",
    "text",
    "bool",
    "timestamp",
    "date",
    "constant",
    "template",
    "foreign_key",
    "vector",
    "json",
)
_WORDS = tuple(
    " ".join(
        (
            "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec",
            "romeo sierra tango uniform victor whiskey xray yankee zulu amber basil cedar dune ember fern grove harbor",
            "island jade kelp lagoon meadow nectar orchard pebble quartz river saffron tundra umber valley willow",
        )
    ).split(" ")
)
MAX_ROWS = 50_000_000

# What PostgreSQL type names each generator may fill (binary COPY needs the exact Python type).
_INTEGER = {"int2", "int4", "int8"}
_FLOAT = {"float4", "float8", "numeric"}
_TEXT = {"text", "varchar", "bpchar", "name"}
_COPY_AS = {"bpchar": "text", "varchar": "text", "name": "text"}
_ACCEPTS: dict[str, set[str]] = {
    "serial": _INTEGER,
    "int": _INTEGER | _FLOAT,
    "foreign_key": _INTEGER,
    "float": _FLOAT,
    "normal": _FLOAT | _INTEGER,
    "lognormal": _FLOAT | _INTEGER,
    "choice": _TEXT | _INTEGER | _FLOAT | {"bool"},
    "text": _TEXT,
    "bool": {"bool"},
    "timestamp": {"timestamptz", "timestamp"},
    "date": {"date"},
    "constant": _TEXT | _INTEGER | _FLOAT | {"bool"},
    "template": _TEXT,
    "vector": {"vector"},
    "json": {"jsonb", "json"},
}


class DataSpecError(ValueError):
    """A data spec that cannot be generated; the message names the place in the file and what to change."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    gen: str
    options: dict[str, Any]
    nulls: float = 0.0


@dataclass(frozen=True)
class TableSpec:
    name: str
    rows: int
    columns: tuple[ColumnSpec, ...]

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class VectorColumn:
    """A vector column whose held-out queries get exact ground truth, keyed by the table's serial column."""

    table: str
    column: str
    key: str
    k: int
    source: VectorSource = field(compare=False)


@dataclass(frozen=True)
class DataSpec:
    seed: int
    tables: tuple[TableSpec, ...]
    vectors: tuple[VectorColumn, ...]
    digest: str

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise DataSpecError(f"no table {name!r} in the data spec")

    def identity(self) -> dict[str, Any]:
        return {"spec": self.digest, "vectors": [v.source.identity() for v in self.vectors]}


def _need(options: dict[str, Any], key: str, where: str) -> Any:
    if key not in options:
        raise DataSpecError(f"{where}: missing `{key}`")
    return options[key]


def _number(value: Any, where: str, *, integer: bool = False, minimum: float | None = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise DataSpecError(f"{where}: expected {'a whole number' if integer else 'a number'}, got {value!r}")
    if minimum is not None and value < minimum:
        raise DataSpecError(f"{where}: must be at least {minimum}, got {value}")
    return value


def _check_column(table: str, name: str, raw: Any, where: str) -> ColumnSpec:
    if isinstance(raw, str):
        raw = {"gen": raw}
    if not isinstance(raw, dict) or "gen" not in raw:
        raise DataSpecError(f"{where}: expected a mapping with `gen` (one of {', '.join(GENERATORS)})")
    options = dict(raw)
    gen = options.pop("gen")
    if gen not in GENERATORS:
        raise DataSpecError(f"{where}: unknown generator {gen!r}; known: {', '.join(GENERATORS)}")
    nulls = _number(options.pop("nulls", 0.0), f"{where}.nulls", minimum=0.0)
    if nulls > 1:
        raise DataSpecError(f"{where}.nulls: a fraction between 0 and 1, got {nulls}")
    if gen in ("int",):
        lo, hi = _need(options, "min", where), _need(options, "max", where)
        if _number(lo, f"{where}.min", integer=True) > _number(hi, f"{where}.max", integer=True):
            raise DataSpecError(f"{where}: min {lo} is above max {hi}")
    elif gen == "float":
        _number(_need(options, "min", where), f"{where}.min")
        _number(_need(options, "max", where), f"{where}.max")
    elif gen == "normal":
        _number(_need(options, "mean", where), f"{where}.mean")
        _number(_need(options, "sd", where), f"{where}.sd", minimum=0)
    elif gen == "lognormal":
        _number(_need(options, "median", where), f"{where}.median", minimum=0)
        _number(_need(options, "sigma", where), f"{where}.sigma", minimum=0)
    elif gen == "choice":
        values = _need(options, "values", where)
        if not isinstance(values, list) or not values:
            raise DataSpecError(f"{where}.values: expected a non-empty list")
        weights = options.get("weights")
        if weights is not None and (
            not isinstance(weights, list)
            or len(weights) != len(values)
            or any(_number(w, f"{where}.weights", minimum=0) < 0 for w in weights)
            or sum(weights) <= 0
        ):
            raise DataSpecError(f"{where}.weights: one non-negative weight per value, not all zero")
    elif gen == "text":
        lo = _number(options.get("min_words", 1), f"{where}.min_words", integer=True, minimum=1)
        hi = _number(options.get("max_words", lo), f"{where}.max_words", integer=True, minimum=1)
        if lo > hi:
            raise DataSpecError(f"{where}: min_words {lo} is above max_words {hi}")
    elif gen == "bool":
        p = _number(options.get("p", 0.5), f"{where}.p", minimum=0)
        if p > 1:
            raise DataSpecError(f"{where}.p: a probability between 0 and 1, got {p}")
    elif gen in ("timestamp", "date"):
        for key in ("start", "end"):
            value = _need(options, key, where)
            if not isinstance(value, date):
                raise DataSpecError(f"{where}.{key}: expected a date like 2024-01-01, got {value!r}")
    elif gen == "constant":
        _need(options, "value", where)
    elif gen == "template":
        template = _need(options, "value", where)
        if not isinstance(template, str) or "{n}" not in template:
            raise DataSpecError(f"{where}.value: a text with {{n}} (the row number from 1), e.g. user{{n}}@x.test")
    elif gen == "foreign_key":
        ref = _need(options, "ref", where)
        if not isinstance(ref, str) or ref.count(".") != 1:
            raise DataSpecError(f"{where}.ref: expected table.column, got {ref!r}")
        distribution = options.get("distribution", "uniform")
        if distribution not in ("uniform", "zipf"):
            raise DataSpecError(f"{where}.distribution: uniform or zipf, got {distribution!r}")
        if distribution == "zipf":
            _number(options.get("s", 1.1), f"{where}.s", minimum=0)
    elif gen == "serial":
        _number(options.get("start", 1), f"{where}.start", integer=True)
    return ColumnSpec(name, gen, options, float(nulls))


def parse_spec(raw: Any, *, base_dir: Path, digest: str = "") -> DataSpec:
    """Check a spec's structure completely before anything is loaded; errors name the offending key."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tables"), list) or not raw["tables"]:
        raise DataSpecError("the data spec needs a top-level `tables:` list (see fixtures/example_app/data.yaml)")
    seed = _number(raw.get("seed", 42), "seed", integer=True, minimum=0)
    tables: list[TableSpec] = []
    vectors: list[VectorColumn] = []
    for i, table_raw in enumerate(raw["tables"]):
        where = f"tables[{i}]"
        if not isinstance(table_raw, dict) or not isinstance(table_raw.get("name"), str):
            raise DataSpecError(f"{where}: expected a mapping with `name`, `rows` and `columns`")
        name = table_raw["name"]
        where = f"tables[{i}] ({name})"
        if any(t.name == name for t in tables):
            raise DataSpecError(f"{where}: table listed twice")
        columns_raw = table_raw.get("columns")
        if not isinstance(columns_raw, dict) or not columns_raw:
            raise DataSpecError(f"{where}.columns: expected a mapping of column name to generator")
        columns = tuple(_check_column(name, c, r, f"{where}.columns.{c}") for c, r in columns_raw.items())
        vector_cols = [c for c in columns if c.gen == "vector"]
        if len(vector_cols) > 1:
            raise DataSpecError(f"{where}: at most one vector column per table")
        rows = table_raw.get("rows")
        source: VectorSource | None = None
        if vector_cols:
            source = _vector_source(vector_cols[0], rows, seed, i, base_dir, f"{where}.columns.{vector_cols[0].name}")
            rows = source.count
        rows = _number(rows, f"{where}.rows", integer=True, minimum=1)
        if rows > MAX_ROWS:
            raise DataSpecError(f"{where}.rows: at most {MAX_ROWS:,}, got {rows:,}")
        spec = TableSpec(name, rows, columns)
        for c in columns:
            if c.gen == "foreign_key":
                _check_reference(tables, c, f"{where}.columns.{c.name}")
        if source is not None:
            vectors.append(_vector_column(spec, vector_cols[0], source, where))
        tables.append(spec)
    return DataSpec(int(seed), tuple(tables), tuple(vectors), digest)


def _vector_source(
    column: ColumnSpec, rows: Any, seed: int, table_index: int, base_dir: Path, where: str
) -> VectorSource:
    options = column.options
    if column.nulls:
        raise DataSpecError(f"{where}: vector columns cannot have nulls (ground truth needs every row)")
    queries = _number(options.get("queries", 100), f"{where}.queries", integer=True, minimum=1)
    try:
        if "file" in options:
            path = Path(str(options["file"])).expanduser()
            path = path if path.is_absolute() else base_dir / path
            source = open_vector_file(path, int(queries), expected_dim=options.get("dim"))
            if rows is not None and rows != source.count:
                raise DataSpecError(
                    f"{where}: the table has {rows} rows but {path.name} holds {source.count} (+{queries} held-out "
                    "queries); drop `rows:` to follow the file"
                )
            return source
        dim = _number(_need(options, "dim", where), f"{where}.dim", integer=True, minimum=2)
        check_dim(dim)
        clusters = _number(options.get("clusters", 32), f"{where}.clusters", integer=True, minimum=1)
        count = _number(rows, f"{where} rows", integer=True, minimum=1)
        return ClusteredVectors(count, dim, seed + 1000 * (table_index + 1), clusters, queries)
    except VectorDataError as exc:
        raise DataSpecError(f"{where}: {exc}") from None


def _vector_column(table: TableSpec, column: ColumnSpec, source: VectorSource, where: str) -> VectorColumn:
    keys = [c for c in table.columns if c.gen == "serial" and c.options.get("start", 1) == DOC_ID_BASE]
    if not keys:
        raise DataSpecError(
            f"{where}: a table with a vector column needs a key column `{{gen: serial}}` starting at {DOC_ID_BASE}: "
            "ground truth stores that key for each neighbour"
        )
    k = _number(column.options.get("k", min(100, table.rows)), f"{where}.{column.name}.k", integer=True, minimum=1)
    if k > table.rows:
        raise DataSpecError(f"{where}.{column.name}.k: at most the table's {table.rows} rows, got {k}")
    return VectorColumn(table.name, column.name, keys[0].name, int(k), source)


def _check_reference(earlier: list[TableSpec], column: ColumnSpec, where: str) -> None:
    ref_table, ref_column = str(column.options["ref"]).split(".")
    target = next((t for t in earlier if t.name == ref_table), None)
    if target is None:
        raise DataSpecError(f"{where}.ref: table {ref_table!r} must be listed (and so loaded) before this one")
    ref = target.column(ref_column)
    if ref is None or ref.gen != "serial":
        raise DataSpecError(f"{where}.ref: {column.options['ref']} must be a `serial` column of {ref_table}")


def load_data_spec(path: Path) -> DataSpec:
    try:
        text = read_input_text(path, "the data spec")
        raw = parse_input_yaml(text, path, "the data spec")
    except InputFileError as exc:
        raise DataSpecError(str(exc)) from None
    try:
        return parse_spec(raw, base_dir=path.parent, digest=hashlib.sha256(text.encode()).hexdigest()[:16])
    except DataSpecError as exc:
        raise DataSpecError(f"{path}: {exc}") from None


# --- generation -------------------------------------------------------------------------------------


def check_types(table: TableSpec, column_types: dict[str, str]) -> None:
    """Each generator against the column's PostgreSQL type (from the catalog, after the schema is applied)."""
    for c in table.columns:
        if c.name not in column_types:
            raise DataSpecError(
                f"table {table.name}: the schema has no column {c.name!r} (columns: {', '.join(column_types)})"
            )
        pg_type = column_types[c.name]
        if pg_type not in _ACCEPTS[c.gen]:
            raise DataSpecError(
                f"table {table.name}, column {c.name}: generator {c.gen} cannot fill a {pg_type} column "
                f"(it fills {', '.join(sorted(_ACCEPTS[c.gen]))})"
            )


class _Zipf:
    """Ranks 0..n-1 drawn with probability proportional to 1 / (rank + 1) ** s, mapped through a fixed shuffle
    so the heaviest owners are spread over the key range."""

    def __init__(self, n: int, s: float, rng: np.random.Generator) -> None:
        weights = 1.0 / np.arange(1, n + 1) ** s
        self.cdf = np.cumsum(weights / weights.sum())
        self.order = rng.permutation(n)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        ranks = np.minimum(np.searchsorted(self.cdf, rng.random(size)), len(self.cdf) - 1)
        return np.asarray(self.order[ranks])


def _as_datetime(value: date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


class SpecTables:
    """Rows for every table of a spec, ready for the seed's binary COPY."""

    def __init__(self, spec: DataSpec, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        self.spec = spec
        self.chunk_rows = chunk_rows
        self._zipf: dict[tuple[str, str], _Zipf] = {}

    def table_data(self, table: TableSpec, column_types: dict[str, str]) -> TableData:
        check_types(table, column_types)
        index = self.spec.tables.index(table)
        vector = next((v for v in self.spec.vectors if v.table == table.name), None)
        # Binary COPY sends no type per field, only bytes the column's receive function reads: char(n) and
        # varchar read what text sends, and psycopg has binary dumpers for text only.
        types = tuple(_COPY_AS.get(column_types[c.name], column_types[c.name]) for c in table.columns)

        def chunks() -> Iterator[list[tuple[Any, ...]]]:
            vector_chunks = vector.source.chunks(self.chunk_rows) if vector else None
            for number, start in enumerate(range(0, table.rows, self.chunk_rows)):
                n = min(self.chunk_rows, table.rows - start)
                cols: list[list[Any]] = []
                for ci, c in enumerate(table.columns):
                    if c.gen == "vector":
                        assert vector_chunks is not None
                        chunk = next(vector_chunks)
                        if chunk.start != start or len(chunk.vectors) != n:
                            raise DataSpecError(f"table {table.name}: the vector source is out of step with its rows")
                        values: list[Any] = list(chunk.vectors)
                    else:
                        rng = block_rng(self.spec.seed, 100 + index, ci, number)
                        values = self._values(table, c, column_types[c.name], start, n, rng)
                        if c.nulls:
                            values = [None if m else v for v, m in zip(values, rng.random(n) < c.nulls, strict=True)]
                    cols.append(values)
                yield list(zip(*cols, strict=True))

        return TableData(table.name, tuple(c.name for c in table.columns), types, table.rows, chunks())

    def _values(
        self, table: TableSpec, c: ColumnSpec, pg_type: str, start: int, n: int, rng: np.random.Generator
    ) -> list[Any]:
        o = c.options
        if c.gen == "serial":
            return list(range(int(o.get("start", 1)) + start, int(o.get("start", 1)) + start + n))
        if c.gen == "int":
            return _cast(rng.integers(int(o["min"]), int(o["max"]) + 1, size=n), pg_type)
        if c.gen == "float":
            return _cast(o["min"] + rng.random(n) * (o["max"] - o["min"]), pg_type)
        if c.gen == "normal":
            values = rng.normal(o["mean"], o["sd"], n)
            values = np.clip(values, o.get("min", -np.inf), o.get("max", np.inf))
            return _cast(values, pg_type)
        if c.gen == "lognormal":
            values = o["median"] * np.exp(o["sigma"] * rng.standard_normal(n))
            return _cast(np.minimum(values, o.get("max", np.inf)), pg_type)
        if c.gen == "choice":
            weights = np.asarray(o.get("weights") or [1] * len(o["values"]), dtype=np.float64)
            picks = rng.choice(len(o["values"]), size=n, p=weights / weights.sum())
            return [o["values"][i] for i in picks.tolist()]
        if c.gen == "text":
            lo, hi = int(o.get("min_words", 1)), int(o.get("max_words", o.get("min_words", 1)))
            lengths = rng.integers(lo, hi + 1, size=n).tolist()
            words = rng.integers(len(_WORDS), size=int(sum(lengths))).tolist()
            out, at = [], 0
            for length in lengths:
                out.append(" ".join(_WORDS[w] for w in words[at : at + length]))
                at += length
            return out
        if c.gen == "bool":
            return list((rng.random(n) < float(o.get("p", 0.5))).tolist())
        if c.gen in ("timestamp", "date"):
            first, last = _as_datetime(o["start"]), _as_datetime(o["end"])
            seconds = rng.random(n) * (last - first).total_seconds()
            stamps = [first + timedelta(seconds=float(s)) for s in seconds.tolist()]
            if c.gen == "date":
                return [s.date() for s in stamps]
            return [s.replace(tzinfo=None) for s in stamps] if pg_type == "timestamp" else stamps
        if c.gen == "constant":
            return [o["value"]] * n
        if c.gen == "template":
            # Unique by construction (the row number), for columns a unique index covers.
            return [str(o["value"]).replace("{n}", str(i)) for i in range(start + 1, start + n + 1)]
        if c.gen == "json":
            # The json(b) dumper picked by type encodes the Python value itself.
            return [o.get("value", {})] * n
        if c.gen == "foreign_key":
            ref_table, ref_column = str(o["ref"]).split(".")
            target = self.spec.table(ref_table)
            ref = target.column(ref_column)
            assert ref is not None
            key_start = int(ref.options.get("start", 1))
            if o.get("distribution", "uniform") == "zipf":
                key = (table.name, c.name)
                if key not in self._zipf:
                    column_index = table.columns.index(c)
                    shuffle = block_rng(self.spec.seed, 99, self.spec.tables.index(table), column_index)
                    self._zipf[key] = _Zipf(target.rows, float(o.get("s", 1.1)), shuffle)
                ranks = self._zipf[key].draw(rng, n)
            else:
                ranks = rng.integers(target.rows, size=n)
            return list((ranks + key_start).tolist())
        raise DataSpecError(f"generator {c.gen} is not implemented")  # pragma: no cover - GENERATORS is closed


def _cast(values: np.ndarray, pg_type: str) -> list[Any]:
    if pg_type in _INTEGER:
        return list(np.rint(values).astype(np.int64).tolist())
    if pg_type == "numeric":
        return [Decimal(f"{v:.6f}") for v in values.tolist()]
    return [float(v) for v in values.tolist()]
