"""The team's query mix without a database: RDS Proxy pinning per statement kind, placeholder roles, the
workload file's checks and round trip, per-statement judging, and per-label latencies in the load core."""

from pathlib import Path

import pytest
import yaml

from harness.measure.load import Clock, Limits, plain_client, run_open
from harness.measure.results import new_histogram
from harness.paths import FIXTURES_DIR
from harness.workload.file import (
    WorkloadError,
    leading_comments,
    load_workload,
    parse_workload,
    placeholders,
    save_workload,
)
from harness.workload.params import Role, infer_roles
from harness.workload.pinning import ERROR, FINE, LEAK, analyse, summarise
from harness.workload.replay import BROKEN, FAIL, NONE, PASS, check_replayable, judge
from harness.workload.target import BUILT_IN, load_cache_reads, load_vector_target, vector_target

EXAMPLE_WORKLOAD = FIXTURES_DIR / "example_app" / "workload.yaml"

# (statement, pins in RDS Proxy, what PgBouncer in transaction mode does, finding codes)
PINNING_CASES = [
    ("SELECT * FROM orders WHERE customer_id = $1", False, FINE, ()),
    ("SELECT 'SET search_path = x; LISTEN y'", False, FINE, ()),
    ("SET search_path = app, public", True, LEAK, ("set",)),
    ("SET work_mem = '64MB'", True, LEAK, ("set",)),
    ("SET SESSION statement_timeout = 5000", True, LEAK, ("set",)),
    ("SET application_name = 'shop'", True, LEAK, ("set",)),
    ("SET TIME ZONE 'UTC'", True, LEAK, ("set",)),
    ("SET LOCAL work_mem = '64MB'", False, FINE, ("set_local",)),
    ("RESET work_mem", True, LEAK, ("reset",)),
    ("RESET ALL", True, LEAK, ("reset",)),
    ("SELECT set_config('work_mem', '64MB', false)", True, LEAK, ("set_config",)),
    ("SELECT set_config('work_mem', '64MB', $1)", True, LEAK, ("set_config",)),
    ("SELECT set_config('work_mem', '64MB', true)", False, FINE, ()),
    ("PREPARE q(int) AS SELECT $1", True, ERROR, ("prepare",)),
    ("EXECUTE q(1)", True, ERROR, ("execute",)),
    ("DEALLOCATE q", True, ERROR, ("deallocate",)),
    ("DISCARD ALL", True, FINE, ("discard",)),
    ("CREATE TEMP TABLE scratch (id int)", True, ERROR, ("temp_table",)),
    ("CREATE TEMPORARY SEQUENCE s", True, ERROR, ("temp_table",)),
    ("CREATE TEMP VIEW v AS SELECT 1", True, ERROR, ("temp_table",)),
    ("CREATE TEMP TABLE t AS SELECT * FROM orders", True, ERROR, ("temp_table",)),
    ("SELECT * INTO TEMP t FROM orders", True, ERROR, ("temp_table",)),
    ("CREATE TABLE permanent (id int)", False, FINE, ()),
    ("SELECT pg_advisory_lock($1)", True, LEAK, ("advisory_lock",)),
    ("SELECT pg_try_advisory_lock_shared(1, 2)", True, LEAK, ("advisory_lock",)),
    ("SELECT x FROM (SELECT pg_advisory_lock(7) AS x) s", True, LEAK, ("advisory_lock",)),
    ("SELECT pg_advisory_unlock($1)", True, ERROR, ("advisory_unlock",)),
    ("SELECT pg_advisory_xact_lock($1)", False, FINE, ()),
    ("SELECT pg_try_advisory_xact_lock($1)", False, FINE, ()),
    ("LISTEN order_events", True, ERROR, ("listen",)),
    ("NOTIFY order_events", False, FINE, ()),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM orders", True, ERROR, ("cursor_with_hold",)),
    ("DECLARE c CURSOR FOR SELECT * FROM orders", True, FINE, ("cursor",)),
    ("LOAD 'auto_explain'", True, LEAK, ("load",)),
    ("SELECT nextval('orders_order_id_seq')", True, FINE, ("sequence_function",)),
    ("SELECT currval('orders_order_id_seq')", True, ERROR, ("sequence_function",)),
    ("INSERT INTO orders (order_id) VALUES (nextval($1))", True, FINE, ("sequence_function",)),
    ("SET search_path = app; SELECT pg_advisory_unlock(1)", True, ERROR, ("set", "advisory_unlock")),
]


@pytest.mark.parametrize(("sql", "pins", "pgbouncer", "codes"), PINNING_CASES, ids=[c[0][:40] for c in PINNING_CASES])
def test_each_statement_kind_is_judged_for_rds_proxy_and_pgbouncer(sql, pins, pgbouncer, codes):
    verdict = analyse(sql)
    assert verdict.parse_error is None
    assert (verdict.pins, verdict.pgbouncer, verdict.codes) == (pins, pgbouncer, codes)


def test_a_statement_that_does_not_parse_is_reported_not_passed():
    verdict = analyse("SELEC * FROM orders")
    assert verdict.parse_error and "syntax error" in verdict.parse_error
    summary = summarise([("bad", "SELEC 1", 10), ("ok", "SELECT 1", 90)])
    assert summary.unparsed == ["bad"]


def test_the_pinned_share_weighs_statements_by_their_calls():
    summary = summarise([("set", "SET work_mem = '1MB'", 25), ("read", "SELECT 1", 75)])
    assert summary.pinned_share_pct == pytest.approx(25.0)
    assert summary.lines()[-1].startswith("pinned share: 25.0% of 100 calls (1 of 2 statements)")
    with pytest.raises(ValueError, match="no calls"):
        _ = summarise([("read", "SELECT 1", 0)]).pinned_share_pct


# --- placeholder roles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "roles"),
    [
        ("SELECT * FROM orders WHERE customer_id = $1", {1: Role("column", "orders", "customer_id")}),
        ("SELECT * FROM orders o WHERE $1 = o.status", {1: Role("column", "orders", "status")}),
        (
            "SELECT p.title FROM products p JOIN shops s ON s.shop_id = p.shop_id WHERE s.region = $1 LIMIT $2",
            {1: Role("column", "shops", "region"), 2: Role("limit")},
        ),
        (
            "SELECT product_id FROM products WHERE shop_id = $1 ORDER BY embedding <=> $2 LIMIT $3 OFFSET $4",
            {
                1: Role("column", "products", "shop_id"),
                2: Role("vector", "products", "embedding"),
                3: Role("limit"),
                4: Role("offset"),
            },
        ),
        (
            "SELECT * FROM orders WHERE order_id IN ($1, $2)",
            {1: Role("column", "orders", "order_id")} | {2: Role("column", "orders", "order_id")},
        ),
        (
            "SELECT * FROM orders WHERE placed_at BETWEEN $1 AND $2",
            {1: Role("column", "orders", "placed_at"), 2: Role("column", "orders", "placed_at")},
        ),
        (
            "INSERT INTO orders (customer_id, quantity) VALUES ($1, $2)",
            {1: Role("column", "orders", "customer_id"), 2: Role("column", "orders", "quantity")},
        ),
        (
            "UPDATE products SET stock = stock - $1 WHERE product_id = $2",
            {1: Role("column", "products", "stock"), 2: Role("column", "products", "product_id")},
        ),
        ("SELECT * FROM a JOIN b USING (id) WHERE flag = $1", {1: Role("column", None, "flag")}),
        ("SELECT pg_advisory_lock($1)", {}),
        ("SELEC broken $1", {}),
    ],
)
def test_placeholder_roles_are_read_from_the_parse_tree(sql, roles):
    assert infer_roles(sql) == roles


# --- the workload file ------------------------------------------------------------------------------


def test_the_example_workload_loads_with_captured_figures_and_thresholds():
    workload = load_workload(EXAMPLE_WORKLOAD)
    search = workload.statement("product_search")
    assert search.calls == 52000 and search.mean_ms == 3.1 and search.threshold == "p95 < 250ms"
    assert workload.statement("nightly_lock").replay_weight == 0
    assert "product_search" in workload.missing_params()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "top-level `statements:`"),
        ({"statements": []}, "no statements"),
        ({"statements": [{"id": "a"}]}, "needs a `query`"),
        ({"statements": [{"id": "a", "query": "SELECT 1"}, {"id": "a", "query": "SELECT 2"}]}, "used twice"),
        ({"statements": [{"query": "SELECT $1", "params": [{"guess": 1}]}]}, r"expected one of"),
        ({"statements": [{"query": "SELECT $1", "params": [{"sample": []}]}]}, "non-empty list"),
        ({"statements": [{"query": "SELECT $1", "params": [{"vector": "embedding"}]}]}, "table.column"),
        ({"statements": [{"query": "SELECT $1", "params": [{"range": [5, 1]}]}]}, "low <= high"),
        ({"statements": [{"query": "SELECT 1", "params": [{"value": 1}]}]}, "1 parameter generators for 0"),
        ({"statements": [{"query": "SELECT 1", "threshold": "p95 << 5ms"}]}, "threshold"),
        ({"statements": [{"query": "SELECT 1", "calls": -1}]}, "calls must be"),
    ],
)
def test_bad_workload_files_are_refused_naming_the_statement(raw, message):
    with pytest.raises(WorkloadError, match=message):
        parse_workload(raw, "w.yaml")


def test_a_workload_round_trips_through_its_file_keeping_the_comment_block(tmp_path: Path):
    path = tmp_path / "w.yaml"
    path.write_text("# our notes\n# more\nstatements:\n  - {id: a, query: 'SELECT $1', calls: 3}\n")
    workload = load_workload(path)
    workload.statements[0].params = [{"sample": [1, 2, 3]}]
    save_workload(workload, path, leading_comments(path))
    assert path.read_text().startswith("# our notes\n# more\n")
    assert "sample: [1, 2, 3]" in path.read_text()
    assert load_workload(path).statements[0].params == [{"sample": [1, 2, 3]}]


def test_replay_refuses_statements_without_generators_or_vectors():
    workload = parse_workload(
        {
            "statements": [
                {"id": "a", "query": "SELECT $1, $2", "calls": 1, "params": [{"value": 1}, {"todo": "?"}]},
                {"id": "b", "query": "SELECT $1", "calls": 0},
            ]
        },
        "w",
    )
    with pytest.raises(WorkloadError, match="statements a lack parameter generators"):
        check_replayable(workload, {})
    workload.statements[0].params = [{"value": 1}, {"vector": "products.embedding"}]
    with pytest.raises(WorkloadError, match=r"no held-out query vectors for products\.embedding"):
        check_replayable(workload, {})
    assert [s.id for s in check_replayable(workload, {"products.embedding": None})] == ["a"]


def test_a_statement_is_judged_on_its_own_histogram_and_unmeasured_is_broken():
    statement = parse_workload({"statements": [{"id": "a", "query": "SELECT 1", "threshold": "p95 < 20ms"}]}, "w")
    s = statement.statements[0]
    assert judge(s, None)[0] == BROKEN
    fast, slow = new_histogram(), new_histogram()
    for _ in range(100):
        fast.record_value(5_000)  # microseconds
        slow.record_value(50_000)
    assert judge(s, fast)[0] == PASS
    assert judge(s, slow) == (FAIL, "p95 = 50.02")
    s.threshold = "p95 < 0.01s"
    assert judge(s, fast)[0] == PASS
    s.threshold = None
    assert judge(s, slow)[0] == NONE


def test_the_load_core_keeps_latencies_and_failures_per_label():
    now = [0.0]
    clock = Clock(now=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    calls = [0]

    class Labelled(Exception):
        request_label = "b"

    def request() -> str:
        calls[0] += 1
        now[0] += 0.002
        if calls[0] % 4 == 0:
            raise Labelled("boom")
        return "a" if calls[0] % 2 else "b"

    result = run_open(lambda i: plain_client(request), 100, Limits(1.0, 1000), workers=1, clock=clock)
    assert result.by_label["a"].get_total_count() == 50
    assert result.by_label["b"].get_total_count() == 25
    assert result.errors_by_label == {"b": 25}
    assert placeholders("SELECT $1, $12") == 12


# --- the vector target ------------------------------------------------------------------------------


def test_without_a_workload_file_the_vector_target_is_the_built_in_documents():
    target = load_vector_target(None)
    assert target == BUILT_IN
    assert target.search_sql == 'SELECT "doc_id" FROM "documents" ORDER BY "embedding" <=> %s LIMIT %s'
    assert target.filtered_sql == (
        'SELECT "doc_id" FROM "documents" WHERE "category" = %s ORDER BY "embedding" <=> %s LIMIT %s'
    )


def test_the_example_workload_points_vector_search_at_its_products():
    target = load_vector_target(EXAMPLE_WORKLOAD)
    assert (target.table, target.column, target.key, target.filter_column, target.k) == (
        "products",
        "embedding",
        "product_id",
        "shop_id",
        10,
    )
    assert target.search_sql == 'SELECT "product_id" FROM "products" ORDER BY "embedding" <=> %s LIMIT %s'
    assert 'GROUP BY "shop_id"' in target.rarest_filter_sql


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"operator": "<<"}, "operator must be one of"),
        ({"k": 0}, "k must be between"),
        ({"table": ""}, "table must be"),
        ({"tabel": "x"}, "unknown vector_search key"),
        ("products", "must be a mapping"),
    ],
)
def test_bad_vector_search_sections_are_refused(section, message):
    with pytest.raises(WorkloadError, match=message):
        vector_target(section, "w.yaml")


def test_sections_other_than_statements_survive_a_rewrite(tmp_path: Path):
    path = tmp_path / "w.yaml"
    path.write_text("vector_search: {table: t, column: c, key: id}\nstatements:\n  - {query: 'SELECT 1'}\n")
    save_workload(load_workload(path), path)
    assert load_vector_target(path).table == "t"


def test_the_example_workload_names_its_cached_reads_and_the_built_in_has_none(tmp_path: Path):
    assert load_cache_reads(None) == ()
    reads = load_cache_reads(EXAMPLE_WORKLOAD)
    assert [(r.name, r.ttl_s, r.ids) for r in reads] == [
        ("customer", 300, "customers.customer_id"),
        ("product", 60, "products.product_id"),
    ]
    assert reads[0].key_for(42) == "customer:42:profile"
    assert reads[1].ids_sql == (
        'SELECT DISTINCT "product_id" FROM "products" WHERE "product_id" IS NOT NULL ORDER BY 1'
    )
    plain = tmp_path / "w.yaml"
    plain.write_text("statements: [{query: 'SELECT 1'}]\n")
    assert load_cache_reads(plain) == ()


@pytest.mark.parametrize(
    ("read", "message"),
    [
        ({"key": "customer:profile"}, "key must contain"),
        ({"ttl_s": 0}, "ttl_s must be"),
        ({"query": "SELECT 1"}, "takes the id as"),
        ({"ids": "customer_id"}, "table.column"),
        ({"extra": 1}, "needs exactly"),
    ],
)
def test_bad_cache_reads_are_refused(tmp_path: Path, read, message):
    good = {"name": "c", "key": "c:{id}", "ttl_s": 60, "query": "SELECT * FROM c WHERE id = $1", "ids": "c.id"}
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"cache": {"reads": [{**good, **read}]}, "statements": [{"query": "SELECT 1"}]}))
    with pytest.raises(WorkloadError, match=message):
        load_cache_reads(path)
