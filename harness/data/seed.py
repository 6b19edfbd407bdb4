"""Seed the unit's database with the built-in application: schema from fixtures/sql, generated (or
user-supplied) vectors and the rows around them, and the vector index.

The load itself (staging schema, COPY, swap, the fingerprint in `app.seed_state`) is harness.data.loading's,
shared with a team's schema and growth; the fingerprint here covers the profile, sizes, seed, dimension,
fixture SQL and index, so seeding the same one again does nothing. Ground truth for the held-out queries is
written under `data_dir/<dataset>/` (harness.data.datasets).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import psycopg

from harness.data.app_role import DEFAULT_APP_ROLE
from harness.data.datasets import dataset_key, ensure_ground_truth, ground_truth_dir
from harness.data.loading import (
    ChunkHook,
    Seeding,
    SeedReport,
    apply_migrations,
    build_vector_index,
    content_digest,
    copy_table,
    load_staged,
)
from harness.data.migrations import FIXTURES_SQL_DIR, Migration, load_migrations, schema_version
from harness.data.profiles import SeedProfile
from harness.data.tables import Population
from harness.data.vectors import ClusteredVectors, VectorSource
from harness.endpoints import PostgresEndpoint, Secret


def generated_source(profile: SeedProfile) -> ClusteredVectors:
    return ClusteredVectors(profile.vectors, profile.dim, profile.seed, profile.clusters, profile.queries)


def seed_fingerprint(profile: SeedProfile, source: VectorSource, migrations: list[Migration], app_role: str) -> str:
    return content_digest(
        {
            "profile": dataclasses.asdict(profile),
            "source": source.identity(),
            "schema_version": schema_version(migrations),
            "app_role": app_role,
        }
    )


def seed(
    endpoint: PostgresEndpoint,
    profile: SeedProfile,
    data_dir: Path,
    app_password: Secret | str,
    *,
    app_role: str = DEFAULT_APP_ROLE,
    source: VectorSource | None = None,
    force: bool = False,
    progress: bool = True,
    chunk_hook: ChunkHook | None = None,
    sql_dir: Path = FIXTURES_SQL_DIR,
    build_memory: str | None = None,
) -> SeedReport:
    """Load `profile` into the database behind `endpoint` (the direct endpoint: COPY and DDL need a
    session of their own, which a transaction-mode pooler does not give).

    data_dir is the datasets root (`data_root(settings.state_dir)`). source replaces the generated
    vectors with a user's embeddings (`harness.data.vectors.open_vector_file`); the profile's vector count
    and dimension then follow the file. force reloads even when the fingerprint matches. build_memory
    overrides the profile's maintenance_work_mem for the index build only.
    """
    if source is None:
        source = generated_source(profile)
    else:
        profile = profile.with_overrides(vectors=source.count, dim=source.dim)
    migrations = load_migrations(sql_dir)
    key = dataset_key(source, profile.k)
    gt_dir = ground_truth_dir(data_dir, source, key)
    seeding = Seeding(
        endpoint=endpoint,
        name=profile.name,
        fingerprint=seed_fingerprint(profile, source, migrations, app_role),
        dataset_key=key,
        params={"profile": dataclasses.asdict(profile), "source": source.identity()},
        index=profile.index.describe(source.count),
        ground_truth_dir=gt_dir,
        app_role=app_role,
        app_password=app_password if isinstance(app_password, Secret) else Secret(app_password),
        index_kind=profile.index.kind,
        force=force,
        progress=progress,
        chunk_hook=chunk_hook,
    )

    def build(conn: psycopg.Connection[Any], timings: dict[str, float]) -> dict[str, int]:
        t = time.perf_counter()
        apply_migrations(conn, migrations, "schema", profile.dim, app_role)
        row_counts = {
            table.name: copy_table(conn, table, progress, chunk_hook) for table in Population(profile).tables(source)
        }
        timings["load"] = time.perf_counter() - t

        t = time.perf_counter()
        apply_migrations(conn, migrations, "finalize", profile.dim, app_role)
        timings["constraints"] = time.perf_counter() - t

        t = time.perf_counter()
        build_vector_index(conn, endpoint, profile, source.count, progress, build_memory)
        timings["index"] = time.perf_counter() - t
        return row_counts

    return load_staged(
        seeding,
        build,
        f"seed {profile.name}: {profile.users:,} users, {source.count:,} x {source.dim} vectors, "
        f"seed {profile.seed}, index {seeding.index}",
        ground_truth=lambda: ensure_ground_truth(source, profile.k, gt_dir, key, progress),
    )
