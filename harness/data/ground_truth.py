"""Exact ground truth for the held-out queries, its files on disk, and recall@k against it.

Apart from the generator and loaders in harness.data.vectors: those make rows, this scores what the database
returns for them. Ground truth stores doc ids (row index + `DOC_ID_BASE`), so scenarios compare it directly
with what `ORDER BY embedding <=> q LIMIT k` returns.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.vectors import BLOCK_ROWS, DOC_ID_BASE, VectorDataError, VectorSource, normalise


@dataclass(frozen=True)
class GroundTruth:
    """Held-out queries and their exact nearest neighbours by cosine distance (pgvector's `<=>`).

    ids[i] are doc ids, nearest first; distances[i] the matching cosine distances.
    """

    queries: np.ndarray
    ids: np.ndarray
    distances: np.ndarray
    manifest: dict[str, Any]

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    @property
    def dim(self) -> int:
        return int(self.queries.shape[1])


def exact_neighbours(
    source: VectorSource,
    queries: np.ndarray,
    k: int,
    chunk_rows: int = 2 * BLOCK_ROWS,
    query_batch: int = 128,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k cosine neighbours of every query, scanning the source once in chunks.

    Returns (doc ids, cosine distances), each (n_queries, k), nearest first, ties broken by lower id.
    Memory is O(n_queries * k + query_batch * chunk_rows), whatever the source's size. on_rows(n) is called after
    each chunk with the number of rows it held.
    """
    if not 1 <= k <= source.count:
        raise VectorDataError(f"k must be between 1 and the number of vectors ({source.count}), got {k}")
    unit_queries = normalise(np.asarray(queries, dtype=np.float32))
    n = len(unit_queries)
    best_sims = np.full((n, k), -np.inf, dtype=np.float32)
    best_rows = np.full((n, k), -1, dtype=np.int64)
    for chunk in source.chunks(chunk_rows):
        data = normalise(chunk.vectors)
        for lo in range(0, n, query_batch):
            hi = min(lo + query_batch, n)
            sims = unit_queries[lo:hi] @ data.T
            # Reduce the chunk to its own top k first, then merge with the running best (2k columns).
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if sims.shape[1] > k else np.indices(sims.shape)[1]
            merged_sims = np.concatenate([best_sims[lo:hi], np.take_along_axis(sims, top, axis=1)], axis=1)
            merged_rows = np.concatenate([best_rows[lo:hi], top + chunk.start], axis=1)
            keep = np.argpartition(-merged_sims, k - 1, axis=1)[:, :k]
            best_sims[lo:hi] = np.take_along_axis(merged_sims, keep, axis=1)
            best_rows[lo:hi] = np.take_along_axis(merged_rows, keep, axis=1)
        if on_rows is not None:
            on_rows(len(data))
    order = np.lexsort((best_rows, -best_sims), axis=1)
    ids = np.take_along_axis(best_rows, order, axis=1) + DOC_ID_BASE
    distances = 1.0 - np.take_along_axis(best_sims, order, axis=1)
    return ids, distances.astype(np.float32)


def save_ground_truth(
    directory: Path, queries: np.ndarray, ids: np.ndarray, distances: np.ndarray, manifest: dict[str, Any]
) -> None:
    """Write the files, manifest last: a directory with a manifest is complete."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").unlink(missing_ok=True)
    np.save(directory / "queries.npy", np.asarray(queries, dtype=np.float32))
    np.save(directory / "gt_ids.npy", ids.astype(np.int64))
    np.save(directory / "gt_distances.npy", distances.astype(np.float32))
    tmp = directory / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(directory / "manifest.json")


def load_ground_truth(directory: Path) -> GroundTruth:
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise VectorDataError(f"no ground truth in {directory} (manifest.json missing): run `harness seed`")
    return GroundTruth(
        queries=np.load(directory / "queries.npy", mmap_mode="r"),
        ids=np.load(directory / "gt_ids.npy", mmap_mode="r"),
        distances=np.load(directory / "gt_distances.npy", mmap_mode="r"),
        manifest=json.loads(manifest_path.read_text()),
    )


def recall_at_k(retrieved: Sequence[Sequence[int]] | np.ndarray, truth_ids: np.ndarray, k: int) -> float:
    """Mean over queries of |first k retrieved ∩ true top k| / k.

    retrieved[i] is what the database returned for query i (doc ids, best first); a query that returned
    fewer than k rows (e.g. a filtered HNSW scan) is charged for the missing ones.
    """
    if len(retrieved) != len(truth_ids):
        raise ValueError(f"{len(retrieved)} result lists for {len(truth_ids)} queries")
    if not 1 <= k <= truth_ids.shape[1]:
        raise ValueError(f"k must be between 1 and {truth_ids.shape[1]} (the ground truth's depth), got {k}")
    if len(truth_ids) == 0:
        raise ValueError("no queries")
    hits = sum(
        len(set(map(int, got[:k])) & set(map(int, want[:k]))) for got, want in zip(retrieved, truth_ids, strict=True)
    )
    return hits / (k * len(truth_ids))


class RetrievedAnswers:
    """What each query returned, gathered from concurrent search workers, and its recall@k.

    Workers add {query index: returned ids}; all answers to one query are equal, so the last one wins.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.by_query: dict[int, list[int]] = {}
        self.lock = threading.Lock()

    def add(self, answers: dict[int, list[int]]) -> None:
        with self.lock:
            self.by_query.update(answers)

    def recall(self, truth_ids: np.ndarray) -> float:
        order = sorted(self.by_query)
        return recall_at_k([self.by_query[q] for q in order], np.asarray(truth_ids)[order], self.k)
