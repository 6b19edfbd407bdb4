"""Vector search: latency and recall@10 of top-10 cosine KNN on the seeded documents, measured together.

The table, column, operator and filter column come from `seeded.target` (the workload file's vector_search
section, HARNESS_WORKLOAD; the built-in application's documents by default).

Recall is judged against exact neighbours computed when the data was seeded, so a fast but wrong index
cannot pass. Every client walks the query set in its own order: all clients sending the same sequence
would flatter the caches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from harness.data.ground_truth import RetrievedAnswers
from harness.measure.load import Request, run_closed
from harness.measure.sampling import ResourceSampler

K = 10


def search_clients(endpoint, target, queries: np.ndarray, retrieved: RetrievedAnswers, ef_search: int | None = None):
    @contextmanager
    def factory(index: int) -> Iterator[Request]:
        # prepare_threshold=None: a prepared plan would outlive a change of hnsw.ef_search.
        conn = endpoint.connect(autocommit=True, prepare_threshold=None)
        register_vector(conn)
        if ef_search is not None:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),))
        order = np.random.default_rng(1000 + index).permutation(len(queries))
        position = 0
        answers: dict[int, list[int]] = {}

        def request() -> None:
            nonlocal position
            query = int(order[position % len(order)])
            position += 1
            answers[query] = [row[0] for row in conn.execute(target.search_sql, (queries[query], K))]

        try:
            yield request
        finally:
            retrieved.add(answers)
            conn.close()

    return factory


def server_ef_search(endpoint) -> int:
    with endpoint.connect(autocommit=True, prepare_threshold=None) as conn:
        # pgvector registers its settings when its library loads, at the first use of the type.
        conn.execute("SELECT '[1]'::vector")
        return int(conn.execute("SHOW hnsw.ef_search").fetchone()[0])


@pytest.mark.load_loops(lambda size: len(size.search_concurrency))
def test_latency_and_recall_by_concurrency(stack, seeded, size, results, cloudwatch):
    truth = seeded.ground_truth
    # The application sends plain queries through the proxy, so the server's setting is what it gets.
    in_force = server_ef_search(seeded.app)
    assert in_force == size.ef_search, f"hnsw.ef_search is {in_force} on the server, the size expects {size.ef_search}"
    for clients in size.search_concurrency:
        retrieved = RetrievedAnswers(K)
        limits = size.search_limits(size.search_queries)
        with ResourceSampler(stack, interval_s=0.5, on_sample=cloudwatch).running() as samples:
            result = run_closed(
                search_clients(seeded.app, seeded.target, truth.queries, retrieved),
                clients,
                limits,
                label=f"search x{clients}",
            )
        assert result.errors == 0, result.error_samples
        if result.capped:
            results.record_capped_step(f"search x{clients}", limits.duration_s, result.ok, limits.max_requests)
        recall = retrieved.recall(truth.ids)
        labels = {"clients": clients}
        results.record_latency("vector_search.latency_ms", result.latency, labels)
        # Weighted by the queries behind it: the report's N for recall is the number of queries.
        results.record_value("vector_search.recall_at_10", recall, labels, weight=len(retrieved.by_query))
        results.record_value("vector_search.qps", result.throughput, labels)
        for t, value in samples.series("postgres.cpu_pct"):
            results.record_value("rds.cpu_pct", value, {"scenario": "vector_search"}, t=t)
        for t, value in samples.series("pg.connections_pct"):
            results.record_value("rds.connections_pct", value, {"scenario": "vector_search"}, t=t)
        print(f"search x{clients}: {result.summary()}; recall@10 {recall:.3f}")
        assert 0.0 < recall <= 1.0


@pytest.mark.load_loops(lambda size: len(size.ef_sweep))
def test_recall_latency_curve_across_ef_search(seeded, size, results):
    """One client on the direct endpoint (a session-level SET would leak across a transaction pooler)."""
    truth = seeded.ground_truth
    points = []
    for ef in size.ef_sweep:
        retrieved = RetrievedAnswers(K)
        limits = size.search_limits(min(size.search_queries, 4 * len(truth.queries)))
        result = run_closed(
            search_clients(seeded.app_direct, seeded.target, truth.queries, retrieved, ef_search=ef),
            1,
            limits,
            label=f"ef {ef}",
        )
        assert result.errors == 0, result.error_samples
        recall = retrieved.recall(truth.ids)
        points.append(
            {"ef_search": ef, "recall_at_10": recall, "p95_ms": result.percentile_ms(95), "qps": result.throughput}
        )
        print(
            f"ef_search {ef}: recall@10 {recall:.3f}, p95 {result.percentile_ms(95):.2f} ms, "
            f"{result.throughput:.0f} qps"
        )
    results.record_series("vector_search.recall_curve", points)
    recalls = [p["recall_at_10"] for p in points]
    # A wider search never finds fewer true neighbours (up to a query or two of noise in HNSW).
    assert recalls[-1] >= recalls[0] - 0.01, f"recall fell as ef_search rose: {points}"


def exact_filtered(conn, target, category: str, query: np.ndarray) -> list[int]:
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        return [row[0] for row in conn.execute(target.filtered_sql, (category, query, K))]


@pytest.mark.parametrize("iterative_scan", ["off", "relaxed_order"])
def test_filtered_search_with_and_without_iterative_scans(seeded, size, results, iterative_scan):
    truth, target = seeded.ground_truth, seeded.target
    if target.filter_column is None:
        pytest.skip("the workload's vector_search names no filter_column")
    queries = truth.queries[: size.filtered_queries]
    table, key, column = (sql.Identifier(n) for n in (target.table, target.key, target.filter_column))
    with seeded.app_direct.connect(autocommit=True, prepare_threshold=None) as conn:
        register_vector(conn)
        # The rarest value makes the filter selective: HNSW then finds few matches within ef_search.
        category, population = conn.execute(target.rarest_filter_sql).fetchone()
        wanted = [exact_filtered(conn, target, category, q) for q in queries]
        conn.execute("SELECT set_config('hnsw.iterative_scan', %s, false)", (iterative_scan,))
        got = [[row[0] for row in conn.execute(target.filtered_sql, (category, q, K))] for q in queries]
        returned = sorted({doc for g in got for doc in g})
        (outside_filter,) = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} = ANY(%s) AND {} <> %s").format(table, key, column),
            (returned, category),
        ).fetchone()
    rows = float(np.mean([len(g) for g in got]))
    hits = sum(len(set(g) & set(w)) for g, w in zip(got, wanted, strict=True))
    recall = hits / sum(len(w) for w in wanted)
    labels = {"iterative_scan": iterative_scan}
    results.record_value("vector_search.filtered_recall", recall, labels)
    results.record_value("vector_search.filtered_rows", rows, labels)
    print(
        f"filter {target.filter_column}={category} ({population} rows), iterative_scan={iterative_scan}: "
        f"{rows:.1f} rows per query, recall {recall:.3f}"
    )
    # Either way the filter is honoured: a row outside the category would be a wrong answer, not a slow one.
    assert outside_filter == 0, f"{outside_filter} returned rows are not in {target.filter_column} {category}"
    if iterative_scan == "relaxed_order" and population >= K:
        assert rows == K, f"iterative scans should fill every top-{K}, got {rows:.1f} rows on average"
