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

Recall is scored against the seed's exact cosine ground truth, so L2 or inner product are accepted only
because the generated and loaded embeddings are unit length (they rank identically there).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from psycopg import sql

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
        raw = yaml.safe_load(workload_file.read_text())
    except OSError as exc:
        raise WorkloadError(f"cannot read the workload file {workload_file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise WorkloadError(f"{workload_file} is not valid YAML: {exc}") from None
    return vector_target(raw.get("vector_search") if isinstance(raw, dict) else None, str(workload_file))
