import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.data.ground_truth import exact_neighbours, load_ground_truth, recall_at_k, save_ground_truth
from harness.data.vectors import (
    BLOCK_ROWS,
    DOC_ID_BASE,
    ClusteredVectors,
    NpyVectors,
    VectorDataError,
    open_vector_file,
)


def digest(source: ClusteredVectors, chunk_rows: int = 1000) -> str:
    h = hashlib.sha256()
    for chunk in source.chunks(chunk_rows):
        h.update(chunk.vectors.tobytes())
    h.update(source.queries().tobytes())
    return h.hexdigest()


def everything(source, chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(source.chunks(chunk_rows))
    assert [c.start for c in chunks] == list(range(0, source.count, chunk_rows))
    return np.concatenate([c.vectors for c in chunks]), np.concatenate([c.labels for c in chunks])


def test_same_seed_same_bytes_and_different_seed_differs():
    assert digest(ClusteredVectors(3000, 64, 7, 8, 20)) == digest(ClusteredVectors(3000, 64, 7, 8, 20))
    assert digest(ClusteredVectors(3000, 64, 7, 8, 20)) != digest(ClusteredVectors(3000, 64, 8, 8, 20))


def test_chunked_generation_equals_unchunked():
    source = ClusteredVectors(2 * BLOCK_ROWS + 123, 32, 1, 6, 0)
    whole, whole_labels = everything(source, source.count)
    for chunk_rows in (1, 777, BLOCK_ROWS, 3 * BLOCK_ROWS):
        if chunk_rows == 1:
            # One row at a time is slow; the first few rows are enough to show the slicing is right.
            first = [c.vectors for _, c in zip(range(5), source.chunks(1), strict=False)]
            np.testing.assert_array_equal(np.concatenate(first), whole[:5])
            continue
        vectors, labels = everything(source, chunk_rows)
        np.testing.assert_array_equal(vectors, whole)
        np.testing.assert_array_equal(labels, whole_labels)


@pytest.mark.parametrize("dim", [384, 768, 1536])
def test_vectors_are_float32_unit_norm_of_the_requested_dimension(dim):
    source = ClusteredVectors(500, dim, 3, 4, 10)
    vectors, _ = everything(source, 500)
    assert vectors.dtype == np.float32 and vectors.shape == (500, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert source.queries().shape == (10, dim)


def test_vectors_are_clustered_anisotropic_and_of_varied_cluster_sizes():
    source = ClusteredVectors(8000, 128, 11, 16, 0)
    vectors, labels = everything(source, 8000)
    centroids = np.stack([vectors[labels == k].mean(axis=0) for k in range(16)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    cos = vectors @ centroids.T
    own = cos[np.arange(len(vectors)), labels].mean()
    others = np.ma.masked_array(cos, mask=np.eye(16, dtype=bool)[labels]).mean()
    assert own > 0.8 and own - others > 0.4
    # Variance concentrated in a few dozen directions, as in sentence embeddings.
    eigen = np.linalg.eigvalsh(np.cov(vectors.T))
    assert eigen.sum() ** 2 / (eigen**2).sum() < 128 / 3
    sizes = np.bincount(labels, minlength=16)
    assert sizes.max() > 5 * sizes.min()
    # Not spread over the sphere: random pairs share a common direction.
    assert float((vectors[:1000] * vectors[1000:2000]).sum(axis=1).mean()) > 0.1


def test_queries_are_held_out_and_deterministic():
    source = ClusteredVectors(1000, 32, 5, 4, 50)
    vectors, _ = everything(source, 1000)
    queries = source.queries()
    np.testing.assert_array_equal(queries, ClusteredVectors(1000, 32, 5, 4, 50).queries())
    assert not (np.abs(queries[:, None, :] - vectors[None, :, :]).max(axis=2) < 1e-6).any()


def brute_force(data: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = data.astype(np.float64) / np.linalg.norm(data, axis=1, keepdims=True)
    q = queries.astype(np.float64) / np.linalg.norm(queries, axis=1, keepdims=True)
    dist = 1 - q @ d.T
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return order + DOC_ID_BASE, np.take_along_axis(dist, order, axis=1)


def test_ground_truth_matches_brute_force_on_unnormalised_file(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2050, 24)) * rng.uniform(0.5, 3, size=(2050, 1))
    np.save(tmp_path / "emb.npy", data.astype(np.float32))
    source = NpyVectors(tmp_path / "emb.npy", n_queries=50)
    queries = source.queries()
    ids, distances = exact_neighbours(source, queries, 10, chunk_rows=300, query_batch=16)
    want_ids, want_dist = brute_force(data[:2000].astype(np.float32), queries, 10)
    assert ids.shape == (50, 10) and ids.dtype == np.int64
    for got, want in zip(ids, want_ids, strict=True):
        assert set(got) == set(want)
    np.testing.assert_allclose(distances, want_dist, atol=1e-5)
    assert (np.diff(distances, axis=1) >= 0).all()


def test_ground_truth_of_generated_vectors_is_independent_of_chunking():
    source = ClusteredVectors(3000, 48, 2, 8, 40)
    queries = source.queries()
    a, da = exact_neighbours(source, queries, 20, chunk_rows=3000)
    b, db = exact_neighbours(source, queries, 20, chunk_rows=512, query_batch=7)
    assert all(set(x) == set(y) for x, y in zip(a, b, strict=True))
    np.testing.assert_allclose(da, db, atol=1e-6)
    vectors, _ = everything(source, 3000)
    want, _ = brute_force(vectors, queries, 20)
    assert recall_at_k(a, want, 20) == 1.0


def test_ground_truth_round_trip(tmp_path):
    source = ClusteredVectors(500, 16, 1, 4, 5)
    ids, distances = exact_neighbours(source, source.queries(), 3)
    save_ground_truth(tmp_path / "gt", source.queries(), ids, distances, {"dataset_key": "abc"})
    truth = load_ground_truth(tmp_path / "gt")
    assert truth.k == 3 and truth.dim == 16 and truth.manifest == {"dataset_key": "abc"}
    np.testing.assert_array_equal(truth.ids, ids)
    with pytest.raises(VectorDataError, match="run `harness seed`"):
        load_ground_truth(tmp_path / "missing")


def test_recall_at_k():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at_k([[1, 2, 3, 4], [5, 6, 7, 8]], truth, 4) == 1.0
    assert recall_at_k([[2, 1], [9, 5]], truth, 2) == 0.75
    # A query that returned fewer rows than k is charged for the missing ones.
    assert recall_at_k([[1], [5, 6]], truth, 2) == 0.75
    with pytest.raises(ValueError, match="result lists"):
        recall_at_k([[1]], truth, 1)
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k([[1], [5]], truth, 5)


def test_npy_loader_checks_shape_dimension_and_values(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros(10, np.float32))
    with pytest.raises(VectorDataError, match="expected a 2-D float array"):
        open_vector_file(tmp_path / "flat.npy", 1)
    np.save(tmp_path / "e.npy", np.ones((20, 8), np.float64))
    with pytest.raises(VectorDataError, match="holds 8-dimensional vectors but 384 were asked for"):
        open_vector_file(tmp_path / "e.npy", 2, expected_dim=384)
    with pytest.raises(VectorDataError, match="at least 21 are needed"):
        open_vector_file(tmp_path / "e.npy", 20)
    bad = np.ones((20, 8), np.float32)
    bad[7, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(VectorDataError, match="row 7 holds NaN"):
        list(open_vector_file(tmp_path / "nan.npy", 2).chunks())
    with pytest.raises(VectorDataError, match="unsupported embeddings format"):
        (tmp_path / "e.csv").write_text("1,2\n")
        open_vector_file(tmp_path / "e.csv", 1)


def test_npy_and_parquet_loaders_agree(tmp_path):
    data = np.random.default_rng(1).normal(size=(1000, 12)).astype(np.float32)
    np.save(tmp_path / "e.npy", data)
    pq.write_table(
        pa.table({"id": np.arange(1000), "embedding": list(data)}), tmp_path / "e.parquet", row_group_size=300
    )
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), 12)
    pq.write_table(pa.table({"vec": fixed}), tmp_path / "fixed.parquet", row_group_size=256)
    npy = open_vector_file(tmp_path / "e.npy", 100)
    for name in ("e.parquet", "fixed.parquet"):
        parquet = open_vector_file(tmp_path / name, 100)
        assert (parquet.count, parquet.dim) == (900, 12)
        got = np.concatenate([c.vectors for c in parquet.chunks(128)])
        np.testing.assert_array_equal(got, np.concatenate([c.vectors for c in npy.chunks(128)]))
        np.testing.assert_array_equal(parquet.queries(), data[900:])
    assert npy.identity()["blake2b"] != open_vector_file(tmp_path / "fixed.parquet", 100).identity()["blake2b"]
