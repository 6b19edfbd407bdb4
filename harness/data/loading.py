"""The loading steps every seed path shares: the built-in seed (harness.data.seed), a team's schema and a dump
(harness.data.team_seed) and growth (harness.data.grow).

A load runs in one transaction on the direct (superuser) endpoint: a staging schema is built, filled by binary
COPY in bounded chunks, indexed and analysed, then swapped for the live schema `app` (drop + rename) just
before commit. A failure or a kill at any point leaves the previous data, and its fingerprint, untouched. The
fingerprint lives in `app.seed_state`; seeding the same one again does nothing. Each seed path says what it
loads as one `Seeding` value and hands `load_staged` the step that fills the staging schema.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from harness.data.migrations import Migration
from harness.data.profiles import SeedProfile
from harness.data.tables import TableData
from harness.endpoints import PostgresEndpoint, Secret
from harness.progress import Progress, note

APP_SCHEMA = "app"
STAGING_SCHEMA = "app_staging"
# Serialises seeds of one database: two at once would both build the staging schema.
SEED_LOCK_KEY = 0x6462756E6974
# How long the final swap waits for sessions still using the old tables before giving up.
SWAP_LOCK_TIMEOUT = "60s"
_MIN_HNSW_VERSION = (0, 5, 0)

# Called after each COPY chunk with (table, rows copied so far); raising aborts the whole load.
ChunkHook = Callable[[str, int], None]
# Fills the staging schema (search_path points at it) and returns its row counts; may add to the timings.
StageBuilder = Callable[[psycopg.Connection[Any], dict[str, float]], dict[str, int]]


class SeedError(RuntimeError):
    """The seed cannot run or could not finish; the message says what to do. Old data is intact."""


@dataclass(frozen=True)
class SeedState:
    fingerprint: str
    dataset_key: str
    profile: str
    params: dict[str, Any]
    row_counts: dict[str, int]
    seeded_at: datetime
    load_seconds: float


@dataclass(frozen=True)
class SeedReport:
    profile: str
    fingerprint: str
    dataset_key: str
    # True when the database already held this exact seed and nothing was loaded.
    skipped: bool
    row_counts: dict[str, int]
    timings_s: dict[str, float]
    index: str
    ground_truth_dir: Path
    schema: str = APP_SCHEMA

    def summary(self) -> str:
        if self.skipped:
            return (
                f"seed {self.profile}: already loaded (fingerprint {self.fingerprint[:12]}), nothing to do "
                f"in {self.timings_s['total']:.1f}s"
            )
        counts = ", ".join(f"{name} {count:,}" for name, count in self.row_counts.items())
        return (
            f"seed {self.profile}: loaded in {self.timings_s['total']:.1f}s ({counts}); index {self.index}; "
            f"ground truth in {self.ground_truth_dir}"
        )


@dataclass(frozen=True)
class Seeding:
    """What one seed loads and how: the identity recorded in seed_state (an identical one is not loaded
    again), where it goes, as which application role, and how it reports."""

    endpoint: PostgresEndpoint
    # The seed's name in seed_state and the report: a profile, `team:...` or `dump:...`.
    name: str
    fingerprint: str
    dataset_key: str
    # What seed_state records beside the fingerprint.
    params: dict[str, Any]
    # The vector index as the report describes it.
    index: str
    ground_truth_dir: Path
    app_role: str
    app_password: Secret
    # The index the vector extension must be able to build ("none" when the loader builds none).
    index_kind: str = "none"
    force: bool = False
    progress: bool = True
    chunk_hook: ChunkHook | None = None

    def report(self, skipped: bool, row_counts: dict[str, int], timings: dict[str, float]) -> SeedReport:
        return SeedReport(
            self.name,
            self.fingerprint,
            self.dataset_key,
            skipped,
            row_counts,
            timings,
            self.index,
            self.ground_truth_dir,
        )


def content_digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_seed_state(conn: psycopg.Connection[Any]) -> SeedState | None:
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{APP_SCHEMA}.seed_state",)).fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute(
        sql.SQL(
            "SELECT fingerprint, dataset_key, profile, params, row_counts, seeded_at, load_seconds FROM {}.seed_state"
        ).format(sql.Identifier(APP_SCHEMA))
    ).fetchone()
    return SeedState(*row) if row else None


def current_seed(endpoint: PostgresEndpoint) -> SeedState | None:
    """What the database holds now (None if it was never seeded). Works through the proxy too."""
    with endpoint.connect() as conn:
        return read_seed_state(conn)


def check_vector_extension(conn: psycopg.Connection[Any], endpoint: PostgresEndpoint, index_kind: str) -> None:
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    where = f"the PostgreSQL server at {endpoint.host}:{endpoint.port}"
    if row is None:
        raise SeedError(
            f"{where} has no `vector` extension: install pgvector for its PostgreSQL version "
            "(the embedded backend ships it; on RDS it is built in)"
        )
    if row[1] is None:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    version = row[1] or row[0]
    if index_kind == "hnsw" and tuple(int(p) for p in version.split(".")[:3]) < _MIN_HNSW_VERSION:
        raise SeedError(
            f"{where} has pgvector {version}; HNSW needs 0.5.0 or later: "
            "upgrade it (ALTER EXTENSION vector UPDATE) or seed with --index ivfflat"
        )


def ensure_app_role(conn: psycopg.Connection[Any], endpoint: PostgresEndpoint, role: str, password: Secret) -> None:
    """Create the application role, or fix its password, so `role`/`password` can log in.

    The password is hashed here (SCRAM) so its plain text never reaches the server or its logs. A role
    that already logs in with this password is left alone: re-hashing would change the salt, and a
    pooler holding the old SCRAM secret would stop authenticating it.
    """
    if role == endpoint.user:
        raise SeedError(f"the application role must not be the seeding superuser {role!r}: pick another name")
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if row and row[0]:
        raise SeedError(
            f"role {role!r} exists and is a superuser; the application role must be an ordinary role "
            "(the append-only audit_log relies on it): drop it or choose another application role"
        )
    if row:
        try:
            psycopg.connect(
                **{**endpoint.conninfo_kwargs(), "user": role, "password": password.reveal()}, connect_timeout=5
            ).close()
            return
        except psycopg.OperationalError:
            pass
    hashed = conn.pgconn.encrypt_password(password.reveal().encode(), role.encode(), b"scram-sha-256").decode()
    verb = sql.SQL("ALTER" if row else "CREATE")
    conn.execute(
        sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}").format(
            verb, sql.Identifier(role), sql.Literal(hashed)
        )
    )


def load_staged(
    seeding: Seeding,
    build: StageBuilder,
    announce: str,
    *,
    ground_truth: Callable[[], bool] | None = None,
    refused: str = "seed",
    input_errors: tuple[type[Exception], ...] = (),
) -> SeedReport:
    """Load what `seeding` describes unless the database holds it already: check the server, make the
    application role, compute ground truth (`ground_truth` returns whether it computed any), then build the
    staging schema with `build` and swap it in. `announce` is printed before a load; the server's refusal
    names what it `refused`; `input_errors` raised while building mean bad input, and say so."""
    started = time.perf_counter()
    endpoint = seeding.endpoint
    timings: dict[str, float] = {}
    try:
        with endpoint.connect(prepare_threshold=None, autocommit=True) as conn:
            check_vector_extension(conn, endpoint, seeding.index_kind)
            register_vector(conn)
            ensure_app_role(conn, endpoint, seeding.app_role, seeding.app_password)
            state = read_seed_state(conn)
            t = time.perf_counter()
            if ground_truth is not None and ground_truth():
                timings["ground_truth"] = time.perf_counter() - t
            if state is not None and state.fingerprint == seeding.fingerprint and not seeding.force:
                timings["total"] = time.perf_counter() - started
                return seeding.report(True, state.row_counts, timings)
            note(announce, seeding.progress)
            row_counts = staged_swap(conn, seeding, build, timings, started)
    except psycopg.Error as exc:
        raise connection_failure(exc, endpoint, f"the server refused the {refused}") from exc
    except input_errors as exc:
        raise SeedError(f"{exc}; nothing was changed, the previous data is intact") from exc
    timings["total"] = time.perf_counter() - started
    return seeding.report(False, row_counts, timings)


def connection_failure(exc: psycopg.Error, endpoint: PostgresEndpoint, refusal: str) -> SeedError:
    """The error a seed path raises for a psycopg error: the connection was lost, or the server refused."""
    if exc.sqlstate is None:
        return SeedError(
            f"lost or could not open the connection to {endpoint.host}:{endpoint.port} ({exc}); the previous "
            "data is intact: check the stack with `harness status` and seed again"
        )
    return SeedError(f"{refusal} ({exc.sqlstate}: {exc}); the previous data is intact")


def staged_swap(
    conn: psycopg.Connection[Any], seeding: Seeding, build: StageBuilder, timings: dict[str, float], started: float
) -> dict[str, int]:
    """Build the new data in the staging schema with `build` (returns row counts), record the seed, then swap
    it for the live schema, all in one transaction: a failure anywhere leaves the previous data as it was."""
    staging, live = sql.Identifier(STAGING_SCHEMA), sql.Identifier(APP_SCHEMA)
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (SEED_LOCK_KEY,)).fetchone()
        if not locked or not locked[0]:
            raise SeedError("another `harness seed` is loading this database: wait for it to finish")
        # The server's limits are for application sessions; a bulk load runs as long as it needs.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(staging))
        conn.execute(sql.SQL("SET LOCAL search_path = {}, public").format(staging))

        row_counts = build(conn, timings)

        t = time.perf_counter()
        for name in row_counts:
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        timings["analyze"] = time.perf_counter() - t

        conn.execute(
            "INSERT INTO seed_state (fingerprint, dataset_key, profile, params, row_counts, load_seconds) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (
                seeding.fingerprint,
                seeding.dataset_key,
                seeding.name,
                Jsonb(seeding.params),
                Jsonb(row_counts),
                time.perf_counter() - started,
            ),
        )
        t = time.perf_counter()
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(SWAP_LOCK_TIMEOUT)))
        try:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(live))
        except psycopg.errors.LockNotAvailable:
            raise SeedError(
                f"could not swap in the new data: sessions kept the old tables locked for {SWAP_LOCK_TIMEOUT}; "
                "stop load generators and scenarios, then seed again (the previous data is intact)"
            ) from None
        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(staging, live))
        # New sessions, the application role's included, find the tables without qualifying them.
        database = conn.execute("SELECT current_database()").fetchone()
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET search_path = {}, public").format(
                sql.Identifier(database[0] if database else seeding.endpoint.dbname), live
            )
        )
        timings["swap"] = time.perf_counter() - t
    return row_counts


def apply_migrations(
    conn: psycopg.Connection[Any], migrations: list[Migration], phase: str, dim: int, app_role: str
) -> None:
    for m in migrations:
        if m.phase != phase:
            continue
        try:
            conn.execute(m.render(conn, dim=dim, schema=STAGING_SCHEMA, app_role=app_role).encode())
        except psycopg.Error as exc:
            raise SeedError(
                f"migration {m.label} failed: {exc}; nothing was changed, the previous data is intact"
            ) from exc
        conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
            (m.version, m.name, m.checksum),
        )


def copy_table(conn: psycopg.Connection[Any], table: TableData, progress: bool, chunk_hook: ChunkHook | None) -> int:
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.columns))
    )
    copied = 0
    with (
        Progress(f"load {table.name}", table.total, enabled=progress) as bar,
        conn.cursor() as cur,
        cur.copy(statement) as copy,
    ):
        copy.set_types(list(table.types))
        for rows in table.chunks:
            for row in rows:
                copy.write_row(row)
            copied += len(rows)
            bar.advance(len(rows))
            if chunk_hook is not None:
                chunk_hook(table.name, copied)
    return copied


def build_vector_index(
    conn: psycopg.Connection[Any],
    endpoint: PostgresEndpoint,
    profile: SeedProfile,
    rows: int,
    progress: bool,
    build_memory: str | None = None,
) -> None:
    """`build_memory` overrides the profile's maintenance_work_mem for this build only (it is not part of
    what was loaded, so the fingerprint does not change)."""
    spec = profile.index
    memory = build_memory or spec.build_memory
    if spec.kind == "none":
        return
    if spec.kind == "hnsw":
        options = sql.SQL("WITH (m = {}, ef_construction = {})").format(
            sql.Literal(spec.m), sql.Literal(spec.ef_construction)
        )
    else:
        options = sql.SQL("WITH (lists = {})").format(sql.Literal(spec.ivfflat_lists(rows)))
    statement = sql.SQL("CREATE INDEX {} ON documents USING {} (embedding vector_cosine_ops) {}").format(
        sql.Identifier(f"documents_embedding_{spec.kind}"), sql.SQL(spec.kind), options
    )
    # Raised for this build only: the server's own setting is what the application's sessions get.
    conn.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(memory)))
    with Progress(
        f"index {profile.index.describe(rows)} at maintenance_work_mem={memory}", rows, enabled=progress
    ) as bar:
        watcher = _IndexProgressWatcher(endpoint, conn.info.backend_pid, bar) if progress else None
        try:
            conn.execute(statement)
        finally:
            if watcher is not None:
                watcher.stop()
        bar.update(rows, status="done")
    conn.execute("SET LOCAL maintenance_work_mem TO DEFAULT")


class _IndexProgressWatcher:
    """Polls pg_stat_progress_create_index from a second session while CREATE INDEX runs."""

    def __init__(self, endpoint: PostgresEndpoint, pid: int, bar: Progress, interval_s: float = 1.0) -> None:
        self._endpoint, self._pid, self._bar, self._interval = endpoint, pid, bar, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="index-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._endpoint.connect(autocommit=True) as watch:
                while not self._stop.wait(self._interval):
                    row = watch.execute(
                        "SELECT phase, tuples_done, blocks_done, blocks_total FROM pg_stat_progress_create_index "
                        "WHERE pid = %s",
                        (self._pid,),
                    ).fetchone()
                    if row:
                        phase, tuples, blocks, blocks_total = row
                        status = phase + (f" {100 * blocks / blocks_total:.0f}% of blocks" if blocks_total else "")
                        self._bar.update(tuples or 0, status=status)
        except psycopg.Error as exc:
            note(f"index progress unavailable ({exc}); the build goes on", self._bar.enabled)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
