"""Growth by appending (harness.data.grow), the parts that need no server: the extended ground truth is
the one a fresh computation over the grown set gives, and the appended rows are a fresh seed's rows."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.ground_truth import GroundTruth, exact_neighbours
from harness.data.grow import choose_strategy, extend_ground_truth, merge_neighbours, new_documents
from harness.data.profiles import get_profile
from harness.data.seed import generated_source
from harness.data.tables import Population


def small_profile(vectors: int):
    return get_profile("ci", vectors=vectors, dim=32, queries=40, k=20)


@pytest.mark.parametrize(("old", "new"), [(3000, 5000), (4096, 8192), (5000, 5010), (1000, 9000)])
def test_extended_ground_truth_equals_the_exact_one_over_the_grown_set(old, new):
    small, large = generated_source(small_profile(old)), generated_source(small_profile(new))
    queries = small.queries()
    ids, distances = exact_neighbours(small, queries, 20)
    extended = extend_ground_truth(GroundTruth(queries, ids, distances, {}), large, old, progress=False)
    fresh_ids, fresh_distances = exact_neighbours(large, queries, 20)
    np.testing.assert_array_equal(extended.ids, fresh_ids)
    np.testing.assert_allclose(extended.distances, fresh_distances, atol=1e-6)


def test_growth_changes_the_ground_truth_when_new_rows_are_nearer():
    """Guards the test above against a merge that just returns the old neighbours."""
    small, large = generated_source(small_profile(1000)), generated_source(small_profile(9000))
    queries = small.queries()
    ids, distances = exact_neighbours(small, queries, 20)
    extended = extend_ground_truth(GroundTruth(queries, ids, distances, {}), large, 1000, progress=False)
    assert (extended.ids > 1000).any()
    assert not np.array_equal(extended.ids, ids)


def test_merge_keeps_the_nearest_and_breaks_ties_by_lower_id():
    ids, distances = merge_neighbours(
        np.array([[5, 9]]), np.array([[0.1, 0.3]]), np.array([[2, 7]]), np.array([[0.3, 0.05]]), 3
    )
    assert ids.tolist() == [[7, 5, 2]]
    np.testing.assert_allclose(distances, [[0.05, 0.1, 0.3]], rtol=1e-6)


def test_placeholders_never_displace_a_real_neighbour():
    ids, _ = merge_neighbours(
        np.array([[1, 2, 3]]), np.array([[0.5, 0.6, 0.7]]), np.array([[-1, -1, -1]]), np.full((1, 3), np.inf), 3
    )
    assert ids.tolist() == [[1, 2, 3]]


def test_a_smaller_seed_is_a_prefix_of_a_larger_one_vectors_and_document_rows():
    small, large = small_profile(3000), small_profile(9000)
    rows_small = [r for rows in Population(small).documents_table(generated_source(small)).chunks for r in rows]
    rows_large = [r for rows in Population(large).documents_table(generated_source(large)).chunks for r in rows]
    assert [r[:6] for r in rows_small] == [r[:6] for r in rows_large[:3000]]
    np.testing.assert_array_equal(np.stack([r[6] for r in rows_small]), np.stack([r[6] for r in rows_large[:3000]]))


@pytest.mark.parametrize("old", [3000, 4096, 5000])
def test_appended_documents_are_the_rows_a_fresh_seed_of_the_larger_size_holds(old):
    profile = small_profile(9000)
    source = generated_source(profile)
    fresh = [row for rows in Population(profile).documents_table(source).chunks for row in rows][old:]
    table = new_documents(profile, source, old)
    appended = [row for rows in table.chunks for row in rows]
    assert table.total == len(appended) == 9000 - old
    assert [r[:6] for r in appended] == [r[:6] for r in fresh]
    np.testing.assert_array_equal(np.stack([r[6] for r in appended]), np.stack([r[6] for r in fresh]))


@pytest.mark.parametrize(
    ("strategy", "old", "new", "chosen"),
    [
        ("auto", 50_000, 100_000, "rebuild"),
        ("auto", 100_000, 110_000, "append"),
        ("auto", 100_000, 125_000, "rebuild"),
        ("append", 50_000, 100_000, "append"),
        ("rebuild", 100_000, 101_000, "rebuild"),
    ],
)
def test_auto_rebuilds_the_index_when_the_new_rows_are_a_large_share(strategy, old, new, chosen):
    assert choose_strategy(strategy, old, new) == chosen
