"""Growth and the capacity sweep on a real PostgreSQL + pgvector: appended rows are a fresh seed's rows
(its fingerprint matches), the extended ground truth is exact, an interrupted growth step leaves the last
complete size, and a two-size ci sweep runs end to end.

Everything runs in throw-away databases on the stack's server, so the stack's own seed is never touched.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from harness.capacity.report import sweep_markdown
from harness.capacity.sweep import PLANS, Sweep, run_sweep
from harness.data.datasets import load_current_ground_truth
from harness.data.ground_truth import exact_neighbours, recall_at_k
from harness.data.grow import grow
from harness.data.loading import SeedError, current_seed
from harness.data.profiles import get_profile
from harness.data.seed import generated_source, seed
from harness.endpoints import PostgresEndpoint
from harness.thresholds import load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

pytestmark = pytest.mark.integration

ROLE = "dbunit_app_growtest"


@pytest.fixture(scope="module")
def grown(scratch_database, stack, tmp_path_factory) -> Iterator[tuple[PostgresEndpoint, Path, str]]:
    password = secrets.token_urlsafe(18)
    data = tmp_path_factory.mktemp("data")
    with scratch_database(stack, "dbunit_growtest") as admin:
        seed(admin, get_profile("ci", vectors=3000), data, password, app_role=ROLE, progress=False)
        yield admin, data, password
    with stack.direct.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


def documents(endpoint: PostgresEndpoint) -> int:
    with endpoint.connect() as conn:
        return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])


def test_an_interrupted_growth_step_leaves_the_last_complete_size_and_its_fingerprint(grown):
    admin, data, _ = grown
    before = current_seed(admin)

    def kill_after_first_chunk(table: str, copied: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grow(admin, 5000, data, app_role=ROLE, progress=False, chunk_hook=kill_after_first_chunk)
    assert documents(admin) == 3000
    after = current_seed(admin)
    assert after is not None and before is not None
    assert (after.fingerprint, after.dataset_key, after.row_counts) == (
        before.fingerprint,
        before.dataset_key,
        before.row_counts,
    )


def test_growth_appends_what_a_fresh_seed_of_the_larger_size_holds(grown):
    admin, data, password = grown
    report = grow(admin, 5000, data, app_role=ROLE, progress=False)
    assert (report.from_vectors, report.to_vectors, report.skipped, report.strategy) == (3000, 5000, False, "rebuild")
    assert documents(admin) == 5000
    # A seed of the grown size finds its own fingerprint: nothing left to load.
    again = seed(admin, get_profile("ci", vectors=5000), data, password, app_role=ROLE, progress=False)
    assert again.skipped and again.fingerprint == report.fingerprint
    truth = load_current_ground_truth(admin, data)
    assert truth.manifest.get("extended_from")
    ids, _ = exact_neighbours(generated_source(get_profile("ci", vectors=5000)), truth.queries, truth.k)
    np.testing.assert_array_equal(truth.ids, ids)
    assert (np.asarray(truth.ids) > 3000).any(), "no appended document is anyone's neighbour: a weak check"
    with admin.connect(prepare_threshold=None) as conn:
        register_vector(conn)
        conn.execute("SET hnsw.ef_search = 100")
        # The index was kept up to date as rows arrived: appended documents are found through it.
        got = [
            [r[0] for r in conn.execute("SELECT doc_id FROM documents ORDER BY embedding <=> %s LIMIT 10", (q,))]
            for q in np.asarray(truth.queries[:50])
        ]
        assert (
            conn.execute(
                "EXPLAIN SELECT doc_id FROM documents ORDER BY embedding <=> %s LIMIT 10",
                (np.asarray(truth.queries[0]),),
            )
            .fetchall()[1][0]
            .find("documents_embedding_hnsw")
            >= 0
        )
    assert recall_at_k(got, np.asarray(truth.ids[:50]), 10) >= 0.9
    assert grow(admin, 5000, data, app_role=ROLE, progress=False).skipped


def test_a_small_growth_step_keeps_the_index_and_inserts_into_it(grown):
    admin, data, password = grown
    report = grow(admin, 5500, data, app_role=ROLE, progress=False)
    assert report.strategy == "append" and documents(admin) == 5500
    assert seed(admin, get_profile("ci", vectors=5500), data, password, app_role=ROLE, progress=False).skipped
    truth = load_current_ground_truth(admin, data)
    with admin.connect(prepare_threshold=None) as conn:
        register_vector(conn)
        conn.execute("SET hnsw.ef_search = 100")
        got = [
            [r[0] for r in conn.execute("SELECT doc_id FROM documents ORDER BY embedding <=> %s LIMIT 10", (q,))]
            for q in np.asarray(truth.queries[:50])
        ]
    assert recall_at_k(got, np.asarray(truth.ids[:50]), 10) >= 0.9


def test_growth_refuses_to_shrink_and_says_how(grown):
    admin, data, _ = grown
    with pytest.raises(SeedError, match="only appends"):
        grow(admin, 1000, data, app_role=ROLE, progress=False)


def test_a_two_size_ci_sweep_measures_and_judges_every_size(scratch_database, stack, harness_settings, tmp_path):
    with scratch_database(stack, "dbunit_capacitytest") as admin:
        own = dataclasses.replace(stack, direct=admin, proxy=dataclasses.replace(stack.proxy, dbname=admin.dbname))
        thresholds = load_thresholds(DEFAULT_THRESHOLDS_FILE)
        messages: list[str] = []
        result = run_sweep(own, harness_settings, PLANS["ci"], "ci", thresholds, tmp_path, messages.append)
        assert documents(admin) == PLANS["ci"].sizes[-1]
        # A size the database already holds is reached without building anything, and says so.
        again = Sweep(own, harness_settings, PLANS["ci"], thresholds, tmp_path, messages.append).reach(
            PLANS["ci"].sizes[-1]
        )
        assert not again.index_built and "nothing to do" in again.detail and "index built" not in again.detail
    assert all("index built at maintenance_work_mem=" in s.grow_detail for s in result.sizes)
    assert [s.size for s in result.sizes] == list(PLANS["ci"].sizes)
    for size in result.sizes:
        assert size.p95_ms > 0 and 0 < size.recall <= 1 and size.index_bytes > 0
        assert size.cache_hit_rate is not None and size.thresholds
        assert set(size.thresholds.values()) <= {"PASS", "WARN", "FAIL"}, size.thresholds
    assert result.sizes[1].index_bytes > result.sizes[0].index_bytes
    assert result.saturation is not None and result.saturation.steps
    saved = json.loads((tmp_path / "capacity.json").read_text())
    assert [s["size"] for s in saved["sizes"]] == list(PLANS["ci"].sizes)
    assert "NOT EMULATED" in sweep_markdown(result, None, None)


def test_a_classes_sweep_restarts_the_stack_with_each_class_sizing_and_lifts_the_cap_only_for_a_build(
    stack, harness_settings
):
    """Drained too: the report's conditions come from what the kernel holds after the restart."""
    from harness.backends import get_backend
    from harness.capacity.classes import ClassPlan, StackHandle, memory_bytes
    from harness.capacity.sweep import conditions

    if harness_settings.backend != "embedded":
        pytest.skip("restarting with another class's sizing needs the embedded backend")
    handle = StackHandle(harness_settings, stack, lambda _: None)
    plan = ClassPlan(("db.t3.small",), drained=True)
    try:
        small = handle.become(plan.measuring(harness_settings, "db.t3.small"))
        assert small.facts["postgres"]["instance_class"] == "db.t3.small"
        assert small.facts["postgres"]["shared_buffers"] == "512MB"
        assert small.facts["credits"]["mode"] == "drained"
        applied, missing = conditions(small.facts)
        if small.facts["credits"]["storage"].get("capped_read_iops"):
            # gp2 20 GiB: 100 IOPS baseline, below the t3 link's 500.
            assert small.facts["credits"]["storage"]["capped_read_iops"] == 100
            assert "capped at 100 IOPS" in applied[1] and not any("storage IOPS" in m for m in missing)
        else:
            assert any("storage IOPS" in m for m in missing)
        group = get_backend(handle.settings).cgroup  # type: ignore[attr-defined]
        capped = small.facts["cgroup"]["enforced"]
        if capped:
            assert group.memory_limit() == 2 * 2**30
        with handle.build_room("1GB") as note:
            if capped:
                assert group.memory_limit() == 2 * 2**30 + memory_bytes("1GB")
                assert "NOT within the instance's memory" in note
        if capped:
            assert group.memory_limit() == 2 * 2**30
        with small.direct.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        back = handle.become(harness_settings)
    assert back.facts["postgres"]["instance_class"] == harness_settings.db_instance_class
