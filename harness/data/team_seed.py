"""Seed a team's own schema (`harness seed --schema DIR --data SPEC`) instead of the built-in application.

Same contract as the built-in seed (harness.data.loading): everything is built in the staging schema inside
one transaction and swapped in at the end, so a failing migration, a bad spec or a kill leaves the previous
data untouched; the fingerprint (migration checksums, spec, embeddings) makes a second identical seed a
no-op. The harness adds its bookkeeping tables (schema_migrations, seed_state) beside the team's, moves every
identity/serial sequence past the loaded keys, and grants the application role read/write on the team's
tables (an application logs in with an ordinary role, as on RDS).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from harness.data.app_role import DEFAULT_APP_ROLE
from harness.data.column_truth import DEFAULT_K, ColumnVectors, primary_key, read_queries, write_column_truth
from harness.data.datasets import dataset_key, ensure_ground_truth, ground_truth_dir
from harness.data.dump_restore import DumpError, plan_restore, restore_into_staging
from harness.data.loading import (
    STAGING_SCHEMA,
    ChunkHook,
    SeedError,
    Seeding,
    SeedReport,
    apply_migrations,
    content_digest,
    copy_table,
    load_staged,
)
from harness.data.migrations import Migration, load_migrations, load_team_migrations, schema_version
from harness.data.spec import DataSpec, DataSpecError, SpecTables
from harness.data.tables import TableData
from harness.data.vectors import VectorDataError
from harness.endpoints import PostgresEndpoint, Secret

BOOKKEEPING = "bookkeeping"


def _bookkeeping() -> list[Migration]:
    return [m for m in load_migrations() if m.name == BOOKKEEPING]


def team_fingerprint(migrations: list[Migration], spec: DataSpec | None, app_role: str) -> str:
    return content_digest(
        {
            "kind": "team",
            "schema_version": schema_version(migrations),
            "data": spec.identity() if spec else None,
            "app_role": app_role,
        }
    )


def _column_types(conn: psycopg.Connection[Any], table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (f"{STAGING_SCHEMA}.{table}",),
    ).fetchall()
    if not rows:
        raise DataSpecError(f"the data spec loads table {table!r}, but the migrations did not create it")
    return {name: typname for name, typname in rows}


def _fix_sequences_and_grants(conn: psycopg.Connection[Any], app_role: str) -> None:
    """Keys were loaded explicitly: move every owned sequence past them; let the application role in."""
    owned = conn.execute(
        "SELECT c.relname, a.attname, pg_get_serial_sequence(format('%%I.%%I', n.nspname, c.relname), a.attname) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') "
        "AND pg_get_serial_sequence(format('%%I.%%I', n.nspname, c.relname), a.attname) IS NOT NULL",
        (STAGING_SCHEMA,),
    ).fetchall()
    for table, column, sequence in owned:
        conn.execute(
            sql.SQL("SELECT setval({}, coalesce(max({}), 0) + 1, false) FROM {}").format(
                sql.Literal(sequence), sql.Identifier(column), sql.Identifier(table)
            )
        )
    schema, role = sql.Identifier(STAGING_SCHEMA), sql.Identifier(app_role)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(schema, role))
    conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema, role))
    # The harness's own bookkeeping is read-only for the application, as in the built-in schema.
    conn.execute(sql.SQL("REVOKE INSERT, UPDATE, DELETE ON schema_migrations, seed_state FROM {}").format(role))


def seed_team(
    endpoint: PostgresEndpoint,
    schema_dir: Path,
    spec: DataSpec | None,
    data_dir: Path,
    app_password: Secret | str,
    *,
    app_role: str = DEFAULT_APP_ROLE,
    force: bool = False,
    progress: bool = True,
    chunk_hook: ChunkHook | None = None,
) -> SeedReport:
    """Apply the team's migrations in `schema_dir` to a fresh staging schema, load `spec`'s rows (none if
    None: an empty schema), compute ground truth for the spec's vector columns, and swap it in."""
    team = load_team_migrations(schema_dir)
    migrations = _bookkeeping() + team
    # A directory called migrations/ says little: name the project folder holding it too.
    resolved = schema_dir.resolve()
    name = f"team:{resolved.parent.name}/{resolved.name}"
    truths = {f"{v.table}.{v.column}": (v, dataset_key(v.source, v.k)) for v in (spec.vectors if spec else ())}
    first_key = next(iter(truths.values()))[1] if truths else "none"
    gt_dir = ground_truth_dir(data_dir, truths[next(iter(truths))][0].source, first_key) if truths else data_dir
    seeding = Seeding(
        endpoint=endpoint,
        name=name,
        fingerprint=team_fingerprint(team, spec, app_role),
        dataset_key=first_key,
        params={
            "schema_dir": str(resolved),
            "migrations": [m.label for m in team],
            "spec": spec.identity() if spec else None,
            "ground_truth": {label: key for label, (_, key) in truths.items()},
        },
        index="team",
        ground_truth_dir=gt_dir,
        app_role=app_role,
        app_password=app_password if isinstance(app_password, Secret) else Secret(app_password),
        force=force,
        progress=progress,
        chunk_hook=chunk_hook,
    )

    def ground_truth() -> bool:
        for column, key in truths.values():
            ensure_ground_truth(
                column.source,
                column.k,
                ground_truth_dir(data_dir, column.source, key),
                key,
                progress,
                table=column.table,
                column=column.column,
                key_column=column.key,
            )
        return True

    def build(conn: psycopg.Connection[Any], timings: dict[str, float]) -> dict[str, int]:
        t = time.perf_counter()
        apply_migrations(conn, migrations, "schema", 0, app_role)
        timings["schema"] = time.perf_counter() - t
        t = time.perf_counter()
        row_counts: dict[str, int] = {}
        if spec is not None:
            tables = SpecTables(spec)
            for table in spec.tables:
                data = tables.table_data(table, _column_types(conn, table.name))
                row_counts[table.name] = _copy_generated(conn, data, progress, chunk_hook)
        timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        apply_migrations(conn, migrations, "finalize", 0, app_role)
        _fix_sequences_and_grants(conn, app_role)
        timings["finalize"] = time.perf_counter() - t
        return row_counts

    return load_staged(
        seeding,
        build,
        f"seed {name}: {len(team)} migration files, {len(spec.tables) if spec else 0} tables",
        ground_truth=ground_truth,
        input_errors=(DataSpecError,),
    )


def _copy_generated(
    conn: psycopg.Connection[Any], data: TableData, progress: bool, chunk_hook: ChunkHook | None
) -> int:
    """copy_table, with a row psycopg cannot encode (the spec generated a value its column cannot take)
    reported as such rather than as a lost connection."""
    try:
        return copy_table(conn, data, progress, chunk_hook)
    except psycopg.Error as exc:
        if exc.sqlstate is None and not isinstance(exc, psycopg.OperationalError):
            raise SeedError(f"could not encode the generated rows ({exc}); the previous data is intact") from exc
        raise


def seed_dump(
    endpoint: PostgresEndpoint,
    dump: Path,
    data_dir: Path,
    app_password: Secret | str,
    *,
    app_role: str = DEFAULT_APP_ROLE,
    force: bool = False,
    progress: bool = True,
    vector_column: str | None = None,
    queries_file: Path | None = None,
) -> SeedReport:
    """Restore a `pg_dump -Fc` file of one schema (harness.data.dump_restore) into a fresh staging schema,
    with its indexes and constraints, and swap it in; the same dump again is a no-op."""
    try:
        plan = plan_restore(dump, STAGING_SCHEMA)
    except DumpError as exc:
        raise SeedError(f"{exc}; nothing was changed, the previous data is intact") from exc
    truth_key, queries, queries_digest = "none", None, None
    if (vector_column is None) != (queries_file is None):
        raise SeedError("ground truth for a dump needs both the vector column (table.column) and the queries file")
    if vector_column is not None and queries_file is not None:
        if vector_column.count(".") != 1:
            raise SeedError(f"the vector column must be table.column, got {vector_column!r}")
        try:
            queries, queries_digest = read_queries(queries_file)
        except VectorDataError as exc:
            raise SeedError(str(exc)) from None
        truth_key = content_digest({"dump": plan.digest, "queries": queries_digest, "column": vector_column})[:16]
    name = f"dump:{dump.name}"
    seeding = Seeding(
        endpoint=endpoint,
        name=name,
        fingerprint=content_digest({"kind": "dump", "dump": plan.digest, "app_role": app_role, "truth": truth_key}),
        dataset_key=truth_key,
        params={
            "dump": str(dump.resolve()),
            "dump_digest": plan.digest,
            "schema": plan.schema,
            "ground_truth": {vector_column: truth_key} if vector_column else {},
        },
        index="dump",
        ground_truth_dir=data_dir,
        app_role=app_role,
        app_password=app_password if isinstance(app_password, Secret) else Secret(app_password),
        force=force,
        progress=progress,
    )

    def build(conn: psycopg.Connection[Any], timings: dict[str, float]) -> dict[str, int]:
        t = time.perf_counter()
        apply_migrations(conn, _bookkeeping(), "schema", 0, app_role)
        counts = restore_into_staging(conn, plan, data_dir / "restore")
        _fix_sequences_and_grants(conn, app_role)
        timings["restore"] = time.perf_counter() - t
        if vector_column is not None and queries is not None:
            t = time.perf_counter()
            table, column = vector_column.split(".")
            key = primary_key(conn, STAGING_SCHEMA, table)
            source = ColumnVectors(conn, STAGING_SCHEMA, table, column, key, queries)
            write_column_truth(source, data_dir / f"dump-{truth_key}", truth_key, DEFAULT_K)
            timings["ground_truth"] = time.perf_counter() - t
        return counts

    return load_staged(
        seeding,
        build,
        f"seed {name}: schema {plan.schema}, {len(plan.tables)} tables",
        refused="restore",
        input_errors=(DumpError, VectorDataError),
    )
