"""Ground truth for a vector column that is already in the database (a restored dump): the column read in key
order, exact neighbours of the team's own held-out queries, stored by the column's key.

A dump has no held-out rows, so the queries come from the team (embeddings of real searches, saved with
numpy.save); recall is then scored exactly as for generated data (harness.data.ground_truth).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from harness.data.ground_truth import exact_neighbours, save_ground_truth
from harness.data.vectors import DEFAULT_CHUNK_ROWS, DOC_ID_BASE, Chunk, VectorDataError, normalise

DEFAULT_K = 100


class ColumnVectors:
    """A VectorSource over `schema.table.column`, rows in `key` order; keys are collected as rows stream."""

    def __init__(
        self, conn: psycopg.Connection[Any], schema: str, table: str, column: str, key: str, queries: np.ndarray
    ) -> None:
        self.conn, self.schema, self.table, self.column, self.key = conn, schema, table, column, key
        self._queries = queries
        self.keys: list[int] = []
        relation = sql.Identifier(schema, table)
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(relation)).fetchone()
        self._count = int(row[0]) if row else 0
        if self._count == 0:
            raise VectorDataError(f"{table}.{column} holds no rows: there is nothing to search")

    @property
    def count(self) -> int:
        return self._count

    @property
    def dim(self) -> int:
        return int(self._queries.shape[1])

    def identity(self) -> dict[str, Any]:
        return {"kind": "column", "table": self.table, "column": self.column, "rows": self._count}

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
        self.keys = []
        statement = sql.SQL("SELECT {k}, {c} FROM {t} WHERE {c} IS NOT NULL ORDER BY {k}").format(
            k=sql.Identifier(self.key), c=sql.Identifier(self.column), t=sql.Identifier(self.schema, self.table)
        )
        start = 0
        with self.conn.cursor(name="column_truth") as cursor:
            cursor.execute(statement)
            while rows := cursor.fetchmany(chunk_rows):
                self.keys.extend(int(r[0]) for r in rows)
                # pgvector's loaders give an ndarray in text mode and a Vector in binary mode.
                vectors = np.asarray(
                    [np.asarray(r[1].to_numpy() if hasattr(r[1], "to_numpy") else r[1], dtype=np.float32) for r in rows]
                )
                yield Chunk(start, vectors, None)
                start += len(rows)

    def queries(self) -> np.ndarray:
        return self._queries


def read_queries(path: Path) -> tuple[np.ndarray, str]:
    """The team's held-out queries (.npy, rows x dimensions) and a digest of them."""
    try:
        queries = np.load(path)
    # An empty file ends numpy's read with EOFError.
    except (OSError, ValueError, EOFError) as exc:
        raise VectorDataError(f"cannot read the queries {path} as a .npy array: {exc}") from None
    if queries.ndim != 2 or not np.issubdtype(queries.dtype, np.floating) or len(queries) == 0:
        raise VectorDataError(f"{path}: expected a non-empty 2-D float array (queries x dimensions)")
    if not np.isfinite(queries).all():
        bad = int(np.flatnonzero(~np.isfinite(queries).all(axis=1))[0])
        raise VectorDataError(f"{path}: query {bad} holds NaN or infinity; its nearest neighbours are undefined")
    queries = normalise(np.asarray(queries, dtype=np.float32))
    return queries, hashlib.sha256(queries.tobytes()).hexdigest()[:16]


def primary_key(conn: psycopg.Connection[Any], schema: str, table: str) -> str:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = to_regclass(%s) AND i.indisprimary",
        (sql.Identifier(schema, table).as_string(conn),),
    ).fetchall()
    if len(rows) != 1:
        raise VectorDataError(
            f"{table} needs a single-column primary key for its ground truth (found {len(rows)} key columns)"
        )
    return str(rows[0][0])


def write_column_truth(source: ColumnVectors, directory: Path, dataset_key: str, k: int) -> None:
    """Exact top-k by cosine for each query, stored as the column's key values."""
    k = min(k, source.count)
    rows, distances = exact_neighbours(source, source.queries(), k)
    keys = np.asarray(source.keys, dtype=np.int64)
    ids = keys[rows - DOC_ID_BASE]
    save_ground_truth(
        directory,
        source.queries(),
        ids,
        distances,
        {
            "dataset_key": dataset_key,
            "source": source.identity(),
            "k": k,
            "queries": len(source.queries()),
            "metric": "cosine",
            "table": f"app.{source.table}",
            "column": source.column,
            "key_column": source.key,
        },
    )
