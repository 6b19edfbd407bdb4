"""What the vector-search scenarios and the Locust vector user query: the built-in application's documents,
or a team's table, from the `vector_search:` section of its workload file (setting `workload`,
HARNESS_WORKLOAD):

    vector_search:
      table: products          # the table the data spec's `vector` column is in
      column: embedding
      key: product_id          # the serial key the ground truth stores
      operator: "<=>"          # <=> cosine; <-> (L2) and <#> (inner product) rank unit vectors alike
      filter_column: shop_id   # the filtered-search scenario filters on its rarest value (none: skipped)
      k: 10

and, for the cache scenario, the reads a team caches (without it: the built-in profiles and search results):

    cache:
      reads:
        - name: customer
          key: "customer:{id}:profile"      # {id}: an id drawn with Zipf popularity from `ids`
          ttl_s: 300
          query: SELECT customer_id, email, country FROM customers WHERE customer_id = $1
          ids: customers.customer_id

Recall is scored against the seed's exact cosine ground truth, so L2 or inner product are accepted only
because the generated and loaded embeddings are unit length (they rank identically there).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from psycopg import sql

from harness.inputfiles import InputFileError, load_input_yaml
from harness.workload.file import WorkloadError

OPERATORS = ("<=>", "<->", "<#>")
_IDENTIFIER_FIELDS = ("table", "column", "key", "filter_column")


@dataclass(frozen=True)
class VectorTarget:
    table: str = "documents"
    column: str = "embedding"
    key: str = "doc_id"
    operator: str = "<=>"
    filter_column: str | None = "category"
    k: int = 10

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise WorkloadError(f"vector_search.operator must be one of {', '.join(OPERATORS)}, got {self.operator!r}")
        if not 1 <= self.k <= 1000:
            raise WorkloadError(f"vector_search.k must be between 1 and 1000, got {self.k}")
        for name in _IDENTIFIER_FIELDS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise WorkloadError(f"vector_search.{name} must be a column or table name, got {value!r}")

    def _select(self, where: sql.Composable) -> str:
        return (
            sql.SQL("SELECT {key} FROM {table}{where} ORDER BY {column} {op} %s LIMIT %s")
            .format(
                key=sql.Identifier(self.key),
                table=sql.Identifier(self.table),
                where=where,
                column=sql.Identifier(self.column),
                op=sql.SQL(self.operator),
            )
            .as_string(None)
        )

    @property
    def search_sql(self) -> str:
        """Top-k: parameters (query vector, k)."""
        return self._select(sql.SQL(""))

    @property
    def filtered_sql(self) -> str:
        """Top-k within one filter value: parameters (value, query vector, k)."""
        if self.filter_column is None:
            raise WorkloadError("vector_search.filter_column is not set: there is no filtered search")
        return self._select(sql.SQL(" WHERE {} = %s").format(sql.Identifier(self.filter_column)))

    @property
    def rarest_filter_sql(self) -> str:
        """The filter value with the fewest rows, and its count."""
        if self.filter_column is None:
            raise WorkloadError("vector_search.filter_column is not set: there is no filtered search")
        return (
            sql.SQL("SELECT {f}, count(*) FROM {t} GROUP BY {f} ORDER BY count(*), {f} LIMIT 1")
            .format(f=sql.Identifier(self.filter_column), t=sql.Identifier(self.table))
            .as_string(None)
        )


BUILT_IN = VectorTarget()


def vector_target(raw: Any, origin: str) -> VectorTarget:
    if raw is None:
        return BUILT_IN
    if not isinstance(raw, dict):
        raise WorkloadError(f"{origin}: vector_search must be a mapping (table, column, key, operator, ...)")
    known = {f.name for f in fields(VectorTarget)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise WorkloadError(f"{origin}: unknown vector_search key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    try:
        return VectorTarget(**raw)
    except WorkloadError as exc:
        raise WorkloadError(f"{origin}: {exc}") from None


def load_vector_target(workload_file: Path | None) -> VectorTarget:
    """The target a workload file names, or the built-in application's when there is no file."""
    if workload_file is None:
        return BUILT_IN
    try:
        raw = load_input_yaml(workload_file, "the workload file")
    except InputFileError as exc:
        raise WorkloadError(str(exc)) from None
    return vector_target(raw.get("vector_search") if isinstance(raw, dict) else None, str(workload_file))


@dataclass(frozen=True)
class CacheRead:
    """One cache-aside read of a team's application: key pattern, TTL, the query behind it, its id column."""

    name: str
    key: str
    ttl_s: int
    query: str
    ids: str

    def __post_init__(self) -> None:
        if "{id}" not in self.key:
            raise WorkloadError(f"cache read {self.name}: key must contain {{id}}, got {self.key!r}")
        if not isinstance(self.ttl_s, int) or self.ttl_s < 1:
            raise WorkloadError(
                f"cache read {self.name}: ttl_s must be a whole number of seconds >= 1 (volatile-lru evicts only "
                f"keys with a TTL), got {self.ttl_s!r}"
            )
        if "$1" not in self.query:
            raise WorkloadError(f"cache read {self.name}: the query takes the id as $1, got {self.query!r}")
        if self.ids.count(".") != 1:
            raise WorkloadError(f"cache read {self.name}: ids must be table.column, got {self.ids!r}")

    def key_for(self, entity_id: object) -> str:
        return self.key.replace("{id}", str(entity_id))

    @property
    def ids_sql(self) -> str:
        table, column = self.ids.split(".")
        return (
            sql.SQL("SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL ORDER BY 1")
            .format(c=sql.Identifier(column), t=sql.Identifier(table))
            .as_string(None)
        )


def load_cache_reads(workload_file: Path | None) -> tuple[CacheRead, ...]:
    """The team's cached reads, or () for the built-in application's profiles and search results."""
    if workload_file is None:
        return ()
    try:
        raw = load_input_yaml(workload_file, "the workload file")
    except InputFileError as exc:
        raise WorkloadError(str(exc)) from None
    section = raw.get("cache") if isinstance(raw, dict) else None
    if section is None:
        return ()
    reads = section.get("reads") if isinstance(section, dict) else None
    if not isinstance(reads, list) or not reads:
        raise WorkloadError(f"{workload_file}: cache needs a non-empty `reads:` list")
    out = []
    for i, item in enumerate(reads):
        if not isinstance(item, dict) or set(item) != {f.name for f in fields(CacheRead)}:
            raise WorkloadError(
                f"{workload_file}: cache.reads[{i}] needs exactly name, key, ttl_s, query and ids, got {item!r}"
            )
        try:
            out.append(CacheRead(**item))
        except (TypeError, AttributeError) as exc:
            raise WorkloadError(f"{workload_file}: cache.reads[{i}]: {exc}") from None
    return tuple(out)
