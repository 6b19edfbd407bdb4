"""A team's own unit on the real stack: the example application (fixtures/example_app) seeded from its
migrations and data spec, its query mix captured from pg_stat_statements, parameterised from the seed and
replayed through the proxy.

Everything runs in a throw-away database on the stack's server (the stack's own seed is never touched);
that database stands in for the team's staging deployment when capturing.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from harness.data.datasets import load_current_ground_truth
from harness.data.ground_truth import recall_at_k
from harness.data.loading import SeedError, current_seed
from harness.data.spec import load_data_spec
from harness.data.team_seed import seed_dump, seed_team
from harness.endpoints import PostgresEndpoint, Secret, StackEndpoints
from harness.paths import FIXTURES_DIR
from harness.services.postgres import bin_dir
from harness.workload.capture import capture
from harness.workload.file import load_workload, parse_workload
from harness.workload.params import fill_params
from harness.workload.replay import replay

pytestmark = pytest.mark.integration

EXAMPLE = FIXTURES_DIR / "example_app"
ROLE = "dbunit_app_teamtest"
DATABASE = "dbunit_team_test"


@dataclasses.dataclass
class TeamDb:
    admin: PostgresEndpoint
    app_direct: PostgresEndpoint
    app_proxy: PostgresEndpoint
    password: str
    data_dir: Path


@pytest.fixture(scope="module")
def team_db(scratch_database, stack: StackEndpoints, tmp_path_factory) -> Iterator[TeamDb]:
    password = secrets.token_urlsafe(18)
    data_dir = tmp_path_factory.mktemp("team-data")
    try:
        with scratch_database(stack, DATABASE) as admin:
            seed_team(
                admin, EXAMPLE / "migrations", load_data_spec(EXAMPLE / "data.yaml"), data_dir, password, app_role=ROLE
            )
            app = dict(user=ROLE, password=Secret(password))
            yield TeamDb(
                admin,
                dataclasses.replace(admin, **app),
                dataclasses.replace(stack.proxy, dbname=DATABASE, **app),
                password,
                data_dir,
            )
    finally:
        with stack.direct.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


def test_the_example_schema_is_seeded_as_its_spec_says_with_keys_indexes_and_grants(team_db: TeamDb):
    spec = load_data_spec(EXAMPLE / "data.yaml")
    state = current_seed(team_db.admin)
    assert state is not None and state.profile == "team:example_app/migrations"
    assert state.row_counts == {t.name: t.rows for t in spec.tables}
    with team_db.admin.connect() as conn:
        migrations = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
        assert migrations == [
            "bookkeeping",
            "V1__shops_and_customers",
            "V2__products",
            "V3__orders",
            "V4__keys_and_indexes",
            "R__views",
        ]
        foreign_keys = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'app'::regnamespace"
        ).fetchone()
        assert foreign_keys == (3,)
        index = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'products_embedding_hnsw'").fetchone()
        assert index and "hnsw" in index[0]
        # Zipf ownership: the busiest shop holds far more than an even share (3000 / 40 = 75) of products.
        (busiest,) = conn.execute("SELECT max(n) FROM (SELECT count(*) n FROM products GROUP BY shop_id) s").fetchone()
        assert busiest > 300
        (null_share,) = conn.execute("SELECT avg((description IS NULL)::int) FROM products").fetchone()
        assert 0.1 < float(null_share) < 0.3
    with team_db.app_direct.connect(autocommit=True) as conn:
        # Keys were loaded explicitly; the sequence must hand out the next one, not collide.
        (order_id,) = conn.execute(
            "INSERT INTO orders (customer_id, product_id, quantity, status, placed_at) "
            "VALUES (1, 1, 1, 'placed', now()) RETURNING order_id"
        ).fetchone()
        assert order_id == spec.table("orders").rows + 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM seed_state")


def test_vector_search_on_the_teams_column_is_scored_against_its_ground_truth(team_db: TeamDb):
    truth = load_current_ground_truth(team_db.admin, team_db.data_dir, "products", "embedding")
    assert truth.manifest["table"] == "app.products" and truth.manifest["key_column"] == "product_id"
    with team_db.app_direct.connect(autocommit=True, prepare_threshold=None) as conn:
        register_vector(conn)
        conn.execute("SET hnsw.ef_search = 100")
        retrieved = [
            [r[0] for r in conn.execute("SELECT product_id FROM products ORDER BY embedding <=> %s LIMIT 10", (q,))]
            for q in np.asarray(truth.queries)
        ]
    assert recall_at_k(retrieved, np.asarray(truth.ids), 10) > 0.8
    with pytest.raises(SeedError, match=r"no ground truth for orders\.embedding"):
        load_current_ground_truth(team_db.admin, team_db.data_dir, "orders", "embedding")


def test_reseeding_the_same_schema_and_spec_is_a_no_op(team_db: TeamDb):
    report = seed_team(
        team_db.admin,
        EXAMPLE / "migrations",
        load_data_spec(EXAMPLE / "data.yaml"),
        team_db.data_dir,
        team_db.password,
        app_role=ROLE,
        progress=False,
    )
    assert report.skipped


def test_a_failing_migration_or_spec_leaves_the_previous_data_untouched(team_db: TeamDb, tmp_path: Path):
    before = current_seed(team_db.admin)
    broken = tmp_path / "migrations"
    shutil.copytree(EXAMPLE / "migrations", broken)
    (broken / "V3__orders.sql").write_text("CREATE TABLE orders (order_id bigint REFERENCES nowhere);\n")
    spec = load_data_spec(EXAMPLE / "data.yaml")
    with pytest.raises(SeedError, match=r"migration V3__orders\.sql failed.*previous data is intact"):
        seed_team(team_db.admin, broken, spec, team_db.data_dir, team_db.password, app_role=ROLE, progress=False)
    (broken / "V3__orders.sql").write_text((EXAMPLE / "migrations" / "V3__orders.sql").read_text())
    (broken / "V2__products.sql").write_text(
        (EXAMPLE / "migrations" / "V2__products.sql").read_text().replace("stock ", "stock_level ")
    )
    with pytest.raises(SeedError, match="has no column 'stock'"):
        seed_team(team_db.admin, broken, spec, team_db.data_dir, team_db.password, app_role=ROLE, progress=False)
    after = current_seed(team_db.admin)
    assert after is not None and before is not None
    assert (after.fingerprint, after.row_counts) == (before.fingerprint, before.row_counts)
    with team_db.admin.connect() as conn:
        assert conn.execute("SELECT to_regnamespace('app_staging')").fetchone() == (None,)


def test_capture_reads_the_mix_from_pg_stat_statements_with_calls_and_means(team_db: TeamDb):
    with team_db.admin.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    with team_db.app_proxy.connect(autocommit=True, prepare_threshold=None) as conn:
        for customer in range(1, 31):
            conn.execute("SELECT count(*) FROM orders WHERE customer_id = %s", (customer,)).fetchone()
        for shop in range(1, 6):
            conn.execute("SELECT sum(stock) FROM products WHERE shop_id = %s", (shop,)).fetchone()
    captured = capture(team_db.admin, top=10, user=ROLE)
    by_query = {s.query: s for s in captured.statements}
    orders = by_query["SELECT count(*) FROM orders WHERE customer_id = $1"]
    stock = by_query["SELECT sum(stock) FROM products WHERE shop_id = $1"]
    assert orders.calls >= 30 and stock.calls >= 5
    assert orders.mean_ms is not None and orders.mean_ms > 0
    assert captured.source["kind"] == "pg_stat_statements" and captured.source["user"] == ROLE
    assert all(not s.query.upper().startswith(("BEGIN", "COMMIT")) for s in captured.statements)


def test_the_example_mix_is_parameterised_from_the_seed_and_replayed_through_the_proxy(team_db: TeamDb):
    workload = load_workload(EXAMPLE / "workload.yaml")
    notes = fill_params(workload, team_db.admin)
    assert notes == [] and workload.missing_params() == []
    assert workload.statement("product_search").params[0] == {"vector": "products.embedding"}
    sampled = workload.statement("customer_orders").params[0]["sample"]
    assert sampled and all(1 <= v <= 2000 for v in sampled)
    truth = load_current_ground_truth(team_db.admin, team_db.data_dir, "products", "embedding")
    report = replay(
        workload,
        team_db.app_proxy,
        {"products.embedding": np.asarray(truth.queries)},
        rate_per_s=60,
        duration_s=3,
        workers=4,
    )
    assert report.load.errors == 0, report.load.error_samples
    measured = {r.statement.id: r.ok for r in report.statements}
    assert "nightly_lock" not in measured, "weight 0 keeps a statement out of replay"
    assert sum(measured.values()) == report.load.ok
    # The heavy statements of the mix are all exercised; their captured means sit beside the local figures.
    for sid in ("product_search", "customer_orders", "product_by_id"):
        assert measured[sid] > 0
    assert report.statements[0].verdict in ("PASS", "FAIL")


def test_a_statement_that_hangs_behind_the_proxy_is_cancelled_and_counted_as_its_failure(team_db: TeamDb):
    workload = parse_workload(
        {
            "statements": [
                {"id": "stall", "query": "SELECT pg_sleep($1)", "calls": 1, "params": [{"value": 30}]},
            ]
        },
        "stall.yaml",
    )
    started = time.monotonic()
    report = replay(workload, team_db.app_proxy, {}, rate_per_s=4, duration_s=1, workers=2, statement_timeout_s=0.5)
    assert time.monotonic() - started < 15, "the client-side bound did not end the stalled statements"
    assert report.load.ok == 0 and report.load.errors_by_label == {"stall": report.load.errors}
    assert report.load.errors >= 2
    assert any("cancel" in sample.lower() for sample in report.load.error_samples), report.load.error_samples


def pg_dump(endpoint: PostgresEndpoint, out: Path, *schemas: str) -> None:
    subprocess.run(
        [str(bin_dir() / "pg_dump"), "-h", endpoint.host, "-p", str(endpoint.port), "-U", endpoint.user]
        + [f"--schema={s}" for s in schemas]
        + ["-Fc", "-f", str(out), endpoint.dbname],
        env={**os.environ, "PGPASSWORD": endpoint.password.reveal()},
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_a_pg_dump_of_staging_is_restored_with_its_indexes_and_swapped_in_safely(
    team_db: TeamDb, scratch_database, stack: StackEndpoints, tmp_path: Path
):
    dump = tmp_path / "staging.dump"
    pg_dump(team_db.admin, dump, "app")
    original = load_current_ground_truth(team_db.admin, team_db.data_dir, "products", "embedding")
    queries = tmp_path / "queries.npy"
    np.save(queries, np.asarray(original.queries))
    with scratch_database(stack, DATABASE + "_restore") as target:
        report = seed_dump(
            target,
            dump,
            team_db.data_dir,
            team_db.password,
            app_role=ROLE,
            progress=False,
            vector_column="products.embedding",
            queries_file=queries,
        )
        # The same rows and queries: the restored column's exact neighbours are the spec's, by product_id.
        restored = load_current_ground_truth(target, team_db.data_dir, "products", "embedding")
        assert restored.manifest["key_column"] == "product_id"
        assert recall_at_k(np.asarray(restored.ids)[:, :10], np.asarray(original.ids), 10) > 0.99
        with team_db.admin.connect() as source:
            expected = {
                t: source.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
                for t in ("shops", "customers", "products", "orders")
            }
        assert report.row_counts == expected
        catalogue = (
            "SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = 'app'), "
            "(SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'app'::regnamespace)"
        )
        with team_db.admin.connect() as source, target.connect() as restored:
            assert restored.execute(catalogue).fetchone() == source.execute(catalogue).fetchone()
            assert restored.execute("SELECT to_regnamespace('app_staging')").fetchone() == (None,)
        app = dataclasses.replace(target, user=ROLE, password=Secret(team_db.password))
        with app.connect(autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM shop_revenue").fetchone()[0] > 0
        again = seed_dump(
            target,
            dump,
            team_db.data_dir,
            team_db.password,
            app_role=ROLE,
            progress=False,
            vector_column="products.embedding",
            queries_file=queries,
        )
        assert again.skipped

        before = current_seed(target)
        truncated = tmp_path / "truncated.dump"
        truncated.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
        with pytest.raises(SeedError, match="previous data is intact"):
            seed_dump(target, truncated, team_db.data_dir, team_db.password, app_role=ROLE, progress=False)
        after = current_seed(target)
        assert after is not None and before is not None and after.fingerprint == before.fingerprint

        two_schemas = tmp_path / "two.dump"
        with target.connect(autocommit=True) as conn:
            conn.execute("CREATE SCHEMA other; CREATE TABLE other.t (id int)")
        pg_dump(target, two_schemas, "app", "other")
        with pytest.raises(SeedError, match="dump exactly one: pg_dump -n SCHEMA"):
            seed_dump(target, two_schemas, team_db.data_dir, team_db.password, app_role=ROLE, progress=False)
