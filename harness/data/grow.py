"""Grow the seeded documents to a larger count by appending, with the ground truth extended exactly.

Capacity sweeps (harness.capacity) measure the unit at 50k, 100k, 200k... documents. Reseeding at each
size would rebuild every table and the whole HNSW index; growing appends only the new documents, whose
rows are exactly those a fresh seed of the larger size would hold (the generator draws per block of
rows, so a smaller set is a prefix of a larger one). The seed state is rewritten to the larger seed's
fingerprint, so `harness seed --vectors N` afterwards finds its data already loaded.

One growth step is one transaction holding the seed lock: a failure or a kill anywhere leaves the last
complete size and its fingerprint. Ground truth is extended, not recomputed: the exact top k over the
grown set is the top k of the old top k and the top k over the appended rows alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from harness.data.app_role import DEFAULT_APP_ROLE
from harness.data.datasets import dataset_key, ensure_ground_truth, ground_truth_dir, ground_truth_manifest
from harness.data.ground_truth import GroundTruth, exact_neighbours, load_ground_truth, save_ground_truth
from harness.data.loading import (
    APP_SCHEMA,
    SEED_LOCK_KEY,
    ChunkHook,
    SeedError,
    SeedState,
    build_vector_index,
    copy_table,
    read_seed_state,
)
from harness.data.migrations import FIXTURES_SQL_DIR, load_migrations
from harness.data.profiles import IndexSpec, SeedProfile
from harness.data.seed import generated_source, seed_fingerprint
from harness.data.tables import Population, TableData
from harness.data.vectors import DEFAULT_CHUNK_ROWS, DOC_ID_BASE, Chunk, ClusteredVectors
from harness.endpoints import PostgresEndpoint
from harness.progress import Progress, note

# How the vector index follows the new rows: maintained row by row, dropped and built again, or chosen by size.
STRATEGIES = ("auto", "append", "rebuild")
# Inserting into the live HNSW index is several times slower per row than building it afresh (each insert
# searches the graph and logs whole pages), so rebuilding wins once the new rows are a large enough share of
# the grown set. README (the capacity sweep's growth) gives the rates this share comes from.
REBUILD_SHARE = 1 / 6


def choose_strategy(strategy: str, old_count: int, new_count: int) -> str:
    if strategy != "auto":
        return strategy
    return "rebuild" if new_count - old_count > REBUILD_SHARE * new_count else "append"


@dataclass(frozen=True)
class GrowReport:
    from_vectors: int
    to_vectors: int
    fingerprint: str
    dataset_key: str
    strategy: str
    # True when the database already held the target size.
    skipped: bool
    timings_s: dict[str, float]
    ground_truth_dir: Path

    def summary(self) -> str:
        if self.skipped:
            return f"grow: already {self.to_vectors:,} documents, nothing to do"
        steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.timings_s.items())
        return (
            f"grow: {self.from_vectors:,} -> {self.to_vectors:,} documents ({self.strategy}; {steps}); "
            f"fingerprint {self.fingerprint[:12]}"
        )


@dataclass(frozen=True)
class Growth:
    """One growth step: the seed the database holds, the larger one it becomes, and how the rows go in."""

    endpoint: PostgresEndpoint
    state: SeedState
    profile: SeedProfile
    source: ClusteredVectors
    old_count: int
    fingerprint: str
    dataset_key: str
    strategy: str
    progress: bool
    chunk_hook: ChunkHook | None
    build_memory: str | None


def profile_of(state: SeedState) -> SeedProfile:
    """The profile a seed state was loaded from (its params hold it whole)."""
    raw = dict(state.params["profile"])
    raw["index"] = IndexSpec(**raw["index"])
    return SeedProfile(**raw)


class _Rows:
    """A generated source seen from row `start` on; chunks keep the source's block alignment when
    `aligned`, otherwise the first is cut to begin exactly at `start`."""

    def __init__(self, source: ClusteredVectors, start: int, aligned: bool) -> None:
        self.source, self.start, self.aligned = source, start, aligned

    @property
    def count(self) -> int:
        return self.source.count

    @property
    def dim(self) -> int:
        return self.source.dim

    def identity(self) -> dict[str, Any]:
        return {**self.source.identity(), "from_row": self.start}

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
        for chunk in self.source.chunks_from(self.start, chunk_rows):
            skip = self.start - chunk.start
            if skip <= 0 or self.aligned:
                yield chunk
            else:
                labels = chunk.labels[skip:] if chunk.labels is not None else None
                yield Chunk(self.start, chunk.vectors[skip:], labels)

    def queries(self) -> np.ndarray:
        return self.source.queries()


def merge_neighbours(
    ids_a: np.ndarray, dist_a: np.ndarray, ids_b: np.ndarray, dist_b: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of two disjoint candidate sets per query, nearest first, ties by lower id (as
    exact_neighbours orders them). Placeholders (infinite distance) never win over a real row."""
    ids = np.concatenate([ids_a, ids_b], axis=1)
    distances = np.concatenate([dist_a, dist_b], axis=1).astype(np.float32)
    order = np.lexsort((ids, distances), axis=1)[:, :k]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(distances, order, axis=1)


def extend_ground_truth(old: GroundTruth, source: ClusteredVectors, old_count: int, progress: bool) -> GroundTruth:
    """Exact top-k over `source` (count > old_count) from `old`, exact over its first old_count rows."""
    k = old.k
    tail = _Rows(source, old_count, aligned=False)
    queries = np.asarray(old.queries)
    label = f"ground truth: {source.count - old_count:,} new rows"
    with Progress(label, source.count - old_count, enabled=progress) as bar:
        tail_ids, tail_dist = _tail_neighbours(tail, queries, k, bar.advance)
    ids, distances = merge_neighbours(np.asarray(old.ids), np.asarray(old.distances), tail_ids, tail_dist, k)
    return GroundTruth(queries, ids, distances, old.manifest)


def _tail_neighbours(tail: _Rows, queries: np.ndarray, k: int, on_rows: Any) -> tuple[np.ndarray, np.ndarray]:
    rows = tail.count - tail.start
    if rows >= k:
        return exact_neighbours(tail, queries, k, on_rows=on_rows)
    # Fewer new rows than k: pad with placeholders that lose every merge.
    ids, distances = exact_neighbours(tail, queries, rows, on_rows=on_rows)
    pad = ((0, 0), (0, k - rows))
    return np.pad(ids, pad, constant_values=-1), np.pad(distances, pad, constant_values=np.inf)


def grow(
    endpoint: PostgresEndpoint,
    vectors: int,
    data_dir: Path,
    *,
    app_role: str = DEFAULT_APP_ROLE,
    strategy: str = "auto",
    progress: bool = True,
    chunk_hook: ChunkHook | None = None,
    sql_dir: Path = FIXTURES_SQL_DIR,
    build_memory: str | None = None,
) -> GrowReport:
    """Append documents to the seeded set until it holds `vectors` of them (direct endpoint only:
    COPY needs a session of its own). The database must hold a generated seed; the schema's fixture
    files must be those it was seeded with. `build_memory` overrides the profile's maintenance_work_mem
    for an index rebuild."""
    started = time.perf_counter()
    if strategy not in STRATEGIES:
        raise SeedError(f"growth strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    migrations = load_migrations(sql_dir)
    try:
        with endpoint.connect(prepare_threshold=None, autocommit=True) as conn:
            register_vector(conn)
            state = read_seed_state(conn)
            if state is None:
                raise SeedError("the database was never seeded: run `harness seed` before growing it")
            old_profile = profile_of(state)
            if state.params.get("source", {}).get("source") != "generated":
                raise SeedError(
                    "the seeded vectors came from a file; growth appends generated vectors only: "
                    "seed a larger file instead"
                )
            old_source = generated_source(old_profile)
            if seed_fingerprint(old_profile, old_source, migrations, app_role) != state.fingerprint:
                raise SeedError(
                    "the fixture SQL, the application role or the generator changed since this data was seeded: "
                    "seed again (`harness seed --force`) before growing it"
                )
            old_count = old_source.count
            if vectors < old_count:
                raise SeedError(
                    f"the database holds {old_count:,} documents; growth only appends (asked for {vectors:,}): "
                    f"seed again with --vectors {vectors} to shrink it"
                )
            strategy = choose_strategy(strategy, old_count, vectors)
            profile = old_profile.with_overrides(vectors=vectors)
            source = generated_source(profile)
            fingerprint = seed_fingerprint(profile, source, migrations, app_role)
            key = dataset_key(source, profile.k)
            gt_dir = ground_truth_dir(data_dir, source, key)
            if vectors == old_count:
                return GrowReport(old_count, vectors, state.fingerprint, state.dataset_key, strategy, True, {}, gt_dir)
            timings: dict[str, float] = {}
            t = time.perf_counter()
            _ensure_extended_ground_truth(data_dir, old_source, state, source, key, gt_dir, progress)
            timings["ground_truth"] = time.perf_counter() - t
            note(f"grow: {old_count:,} -> {vectors:,} x {profile.dim} documents ({strategy})", progress)
            _append(
                conn,
                Growth(
                    endpoint=endpoint,
                    state=state,
                    profile=profile,
                    source=source,
                    old_count=old_count,
                    fingerprint=fingerprint,
                    dataset_key=key,
                    strategy=strategy,
                    progress=progress,
                    chunk_hook=chunk_hook,
                    build_memory=build_memory,
                ),
                timings,
            )
    except psycopg.Error as exc:
        raise SeedError(
            f"growth failed ({exc.sqlstate or 'connection'}: {exc}); the previous size and its fingerprint are intact"
        ) from exc
    timings["total"] = time.perf_counter() - started
    return GrowReport(old_count, vectors, fingerprint, key, strategy, False, timings, gt_dir)


def _ensure_extended_ground_truth(
    data_dir: Path,
    old_source: ClusteredVectors,
    state: SeedState,
    source: ClusteredVectors,
    key: str,
    gt_dir: Path,
    progress: bool,
) -> None:
    manifest = gt_dir / "manifest.json"
    if manifest.is_file():
        return
    old_dir = ground_truth_dir(data_dir, old_source, state.dataset_key)
    k = int(state.params["profile"]["k"])
    if not (old_dir / "manifest.json").is_file():
        # Nothing to extend (another machine seeded): compute it over the whole grown set.
        ensure_ground_truth(source, k, gt_dir, key, progress)
        return
    extended = extend_ground_truth(load_ground_truth(old_dir), source, old_source.count, progress)
    save_ground_truth(
        gt_dir,
        extended.queries,
        extended.ids,
        extended.distances,
        {**ground_truth_manifest(source, key, k, len(extended.queries)), "extended_from": state.dataset_key},
    )


def _append(conn: psycopg.Connection[Any], growth: Growth, timings: dict[str, float]) -> None:
    started = time.perf_counter()
    profile, source, old_count, state = growth.profile, growth.source, growth.old_count, growth.state
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (SEED_LOCK_KEY,)).fetchone()
        if not locked or not locked[0]:
            raise SeedError("a `harness seed` or another growth step is loading this database: wait for it")
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        conn.execute(sql.SQL("SET LOCAL search_path = {}, public").format(sql.Identifier(APP_SCHEMA)))
        index_name = f"documents_embedding_{profile.index.kind}"
        if growth.strategy == "rebuild" and profile.index.kind != "none":
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index_name)))

        t = time.perf_counter()
        appended = copy_table(conn, new_documents(profile, source, old_count), growth.progress, growth.chunk_hook)
        timings["append"] = time.perf_counter() - t
        if appended != source.count - old_count:
            raise SeedError(f"appended {appended:,} rows, expected {source.count - old_count:,}; rolled back")

        if growth.strategy == "rebuild":
            t = time.perf_counter()
            build_vector_index(conn, growth.endpoint, profile, source.count, growth.progress, growth.build_memory)
            timings["index"] = time.perf_counter() - t

        t = time.perf_counter()
        conn.execute("ANALYZE documents")
        timings["analyze"] = time.perf_counter() - t

        row_counts = {**state.row_counts, "documents": source.count}
        grown_from = [*state.params.get("grown_from", []), {"vectors": old_count, "fingerprint": state.fingerprint}]
        conn.execute(
            "UPDATE seed_state SET fingerprint = %s, dataset_key = %s, params = %s, row_counts = %s, "
            "seeded_at = now(), load_seconds = %s",
            (
                growth.fingerprint,
                growth.dataset_key,
                Jsonb(
                    {
                        "profile": dataclasses.asdict(profile),
                        "source": source.identity(),
                        "grown_from": grown_from,
                        "growth_strategy": growth.strategy,
                    }
                ),
                Jsonb(row_counts),
                state.load_seconds + time.perf_counter() - started,
            ),
        )


def new_documents(profile: SeedProfile, source: ClusteredVectors, old_count: int) -> TableData:
    """The documents rows a fresh seed of `source` holds beyond the first old_count. Rows are produced
    per aligned block (their metadata is drawn per block), then the ones already loaded are dropped."""
    table = Population(profile).documents_table(_Rows(source, old_count, aligned=True))
    first_new = old_count + DOC_ID_BASE

    def chunks() -> Iterator[list[tuple[Any, ...]]]:
        for rows in table.chunks:
            yield [row for row in rows if row[0] >= first_new] if rows and rows[0][0] < first_new else rows

    return TableData(table.name, table.columns, table.types, source.count - old_count, chunks())
