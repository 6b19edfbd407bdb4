import numpy as np
import pytest

from harness.app.cache_aside import profile_key, search_key, user_key_pattern
from harness.measure.popularity import ZipfKeys


def test_zipf_is_deterministic_for_a_seed():
    a = ZipfKeys(np.arange(1000), s=1.0, seed=7).sample(500)
    b = ZipfKeys(np.arange(1000), s=1.0, seed=7).sample(500)
    assert np.array_equal(a, b)


def test_skew_concentrates_requests_on_few_keys():
    keys = np.arange(10_000)
    uniform = ZipfKeys(keys, s=0.0, seed=1)
    skewed = ZipfKeys(keys, s=1.2, seed=1)
    draws_uniform, draws_skewed = uniform.sample(50_000), skewed.sample(50_000)
    top = lambda draws: np.sort(np.unique(draws, return_counts=True)[1])[::-1][:100].sum() / draws.size  # noqa: E731
    assert top(draws_uniform) < 0.05
    assert top(draws_skewed) > 0.6
    # The sampled share of the 100 hottest keys matches the analytical one.
    assert top(draws_skewed) == pytest.approx(skewed.expected_hit_rate(100), abs=0.02)


def test_children_share_hot_keys_but_not_their_sequence():
    parent = ZipfKeys(np.arange(1000), s=1.1, seed=3)
    a, b = parent.child(10).sample(2000), parent.child(11).sample(2000)
    assert not np.array_equal(a, b)
    hottest = lambda draws: np.bincount(draws).argmax()  # noqa: E731
    assert hottest(a) == hottest(b) == parent.keys[0]


def test_every_cache_key_of_a_user_matches_its_deletion_pattern():
    import fnmatch

    pattern = user_key_pattern(42)
    assert fnmatch.fnmatch(profile_key(42), pattern)
    assert fnmatch.fnmatch(search_key(42, np.ones(4), 10), pattern)
    assert not fnmatch.fnmatch(profile_key(420), pattern)
