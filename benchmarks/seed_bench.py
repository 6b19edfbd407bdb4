"""Loading benchmark: binary COPY vs executemany INSERT, HNSW build memory, loader peak RSS.

    .venv/bin/python benchmarks/seed_bench.py --profile default
    .venv/bin/python benchmarks/seed_bench.py --profile ci --dsn postgresql://user:pw@127.0.0.1:5432/postgres

Everything is measured in one run on the same data, in a scratch database (dropped afterwards) on the
stack's server (or --dsn), so the stack's own seeded data is never touched:
1. the profile is seeded (no vector index) and the loader's peak RSS is read, next to the size of the
   vector matrix it never holds;
2. the first --compare-rows documents are written to empty tables by binary COPY, by executemany INSERT
   (psycopg's default adaptation, as an application would write them; psycopg 3 pipelines it) and, for
   the first 2,000, by one autocommitted INSERT per row (the naive loader);
3. the HNSW index is built at the db.t3.micro maintenance_work_mem (RDS default) and at the raised one.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from harness.config import resolve_settings
from harness.data.profiles import PROFILES, get_profile
from harness.data.seed import generated_source, seed
from harness.data.tables import Population
from harness.endpoints import PostgresEndpoint, Secret, load_endpoints
from harness.sizing import KIB, postgres_sizing

BENCH_DB = "dbunit_seed_bench"
BENCH_ROLE = "dbunit_app_bench"
MIB = 1024 * 1024
PER_ROW_LIMIT = 2000


def admin_endpoint(dsn: str | None) -> PostgresEndpoint:
    if dsn:
        params = conninfo_to_dict(dsn)
        return PostgresEndpoint(
            str(params.get("host", "127.0.0.1")),
            int(params.get("port", 5432)),
            str(params["user"]),
            Secret(str(params.get("password", ""))),
            str(params.get("dbname", "postgres")),
        )
    settings = resolve_settings()
    stack = load_endpoints(settings.state_dir)
    if stack is None:
        sys.exit(f"no running stack in {settings.state_dir}: run `harness up` or pass --dsn")
    return stack.direct


def scratch(admin: PostgresEndpoint, create: bool) -> None:
    with admin.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
        else:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(BENCH_ROLE)))


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compare_copy_and_insert(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]], dim: int) -> dict[str, float]:
    columns = "doc_id, owner_user_id, tenant_id, category, title, created_at, embedding"
    for name in ("bench_copy", "bench_insert"):
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (doc_id bigint PRIMARY KEY, owner_user_id bigint, tenant_id int, category text, "
                "title text, created_at timestamptz, embedding vector({}))"
            ).format(sql.Identifier(name), dim)
        )
    conn.commit()

    started = time.perf_counter()
    with conn.cursor() as cur, cur.copy(f"COPY bench_copy ({columns}) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int8", "int4", "text", "text", "timestamptz", "vector"])
        for row in rows:
            copy.write_row(row)
    conn.commit()
    copy_s = time.perf_counter() - started

    insert = f"INSERT INTO bench_insert ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.executemany(insert, rows)
    conn.commit()
    insert_s = time.perf_counter() - started

    # What a naive loader does: one statement and one commit per row. Fewer rows: it is slow.
    single = rows[:PER_ROW_LIMIT]
    conn.execute("TRUNCATE bench_insert")
    conn.commit()
    conn.autocommit = True
    started = time.perf_counter()
    for row in single:
        conn.execute(insert, row)
    per_row_s = time.perf_counter() - started
    conn.autocommit = False
    return {
        "copy": len(rows) / copy_s,
        "executemany": len(rows) / insert_s,
        "per_row": len(single) / per_row_s,
        "per_row_n": len(single),
    }


def build_hnsw(conn: psycopg.Connection[Any], memory: str, m: int, ef_construction: int) -> dict[str, Any]:
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(memory)))
    started = time.perf_counter()
    conn.execute(
        sql.SQL(
            "CREATE INDEX bench_hnsw ON app.documents USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = {}, ef_construction = {})"
        ).format(sql.Literal(m), sql.Literal(ef_construction))
    )
    seconds = time.perf_counter() - started
    size = conn.execute("SELECT pg_relation_size('app.bench_hnsw')").fetchone()[0]
    conn.execute("DROP INDEX app.bench_hnsw")
    conn.execute("RESET maintenance_work_mem")
    spilled = [n for n in notices if "no longer fits" in n]
    return {"seconds": seconds, "size_mib": size / MIB, "spilled": spilled[0] if spilled else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="large", choices=list(PROFILES))
    parser.add_argument(
        "--compare-rows", type=int, default=20_000, help="documents written by both COPY and INSERT (default 20,000)"
    )
    parser.add_argument("--dsn", help="a PostgreSQL superuser URL instead of the running stack's direct endpoint")
    parser.add_argument(
        "--skip-hnsw", action="store_true", help="skip the two HNSW builds (at 1M rows the t3.micro one takes hours)"
    )
    parser.add_argument("--quiet", action="store_true", help="no seed progress on stderr")
    args = parser.parse_args(argv)

    admin = admin_endpoint(args.dsn)
    profile = get_profile(args.profile, kind="none")
    raised = get_profile(args.profile).index.build_memory
    micro = postgres_sizing("db.t3.micro")
    micro_kib = micro.maintenance_work_mem_bytes // KIB
    micro_memory = f"{micro_kib // 1024}MB" if micro_kib % 1024 == 0 else f"{micro_kib}kB"
    bench = dataclasses.replace(admin, dbname=BENCH_DB)
    scratch(admin, create=True)
    try:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="seed-bench-") as data_dir:
            report = seed(
                bench, profile, Path(data_dir), secrets.token_urlsafe(18), app_role=BENCH_ROLE, progress=not args.quiet
            )
        seed_s = time.perf_counter() - started
        loader_rss = peak_rss_mib()

        n = min(args.compare_rows, profile.vectors)
        source = generated_source(get_profile(args.profile, vectors=n))
        rows = [row for chunk in Population(profile).documents_table(source).chunks for row in chunk]
        with bench.connect(prepare_threshold=None) as conn:
            register_vector(conn)
            rates = compare_copy_and_insert(conn, rows, profile.dim)
            conn.autocommit = True
            workers = conn.execute("SHOW max_parallel_maintenance_workers").fetchone()[0]
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            table_mib = conn.execute("SELECT pg_total_relation_size('app.documents')").fetchone()[0] / MIB
            builds = (
                []
                if args.skip_hnsw
                else [
                    (label, memory, build_hnsw(conn, memory, profile.index.m, profile.index.ef_construction))
                    for label, memory in (("t3.micro", micro_memory), ("raised", raised))
                ]
            )
    finally:
        scratch(admin, create=False)

    matrix_mib = profile.vectors * profile.dim * 4 / MIB
    print(
        f"profile {profile.name}: {profile.users:,} users, {profile.vectors:,} x {profile.dim} vectors "
        f"(matrix {matrix_mib:,.0f} MiB), pgvector {version}, max_parallel_maintenance_workers {workers}"
    )
    print(
        f"seed (no vector index): {seed_s:.1f}s, {sum(report.row_counts.values()):,} rows; "
        f"documents table {table_mib:,.0f} MiB"
    )
    print(f"loader peak RSS: {loader_rss:,.0f} MiB")
    print(f"binary COPY:                  {rates['copy']:>9,.0f} rows/s  ({n:,} documents)")
    print(
        f"executemany INSERT:           {rates['executemany']:>9,.0f} rows/s  (same rows; psycopg pipelines it)"
        f"  -> COPY is {rates['copy'] / rates['executemany']:.1f}x faster"
    )
    print(
        f"INSERT per row, autocommit:   {rates['per_row']:>9,.0f} rows/s  (first {rates['per_row_n']:,} rows)"
        f"  -> COPY is {rates['copy'] / rates['per_row']:.1f}x faster"
    )
    for label, memory, result in builds:
        spill = f"; {result['spilled']}" if result["spilled"] else ""
        print(
            f"HNSW build at maintenance_work_mem={memory} ({label}): {result['seconds']:.1f}s, "
            f"index {result['size_mib']:,.1f} MiB{spill}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
