"""Embeddings for the vector scenarios: a seeded generator that behaves like sentence embeddings, and
loaders for a user's own embeddings (exact ground truth and recall@k live in harness.data.ground_truth).

Everything streams in chunks of float32 rows so a 1M x 384 set never sits in memory. Rows are numbered
from 0 here; in the database a row's `doc_id` is its index + 1 (`DOC_ID_BASE`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DOC_ID_BASE = 1
# pgvector's HNSW and IVFFlat indexes stop at 2,000 dimensions for the `vector` type.
MAX_INDEXED_DIM = 2000
# Dimensions the harness is tested with (MiniLM-class, BERT-base-class, OpenAI ada-class).
COMMON_DIMS = (384, 768, 1536)
# Randomness is drawn per fixed block of rows, so any chunk size yields the same bytes.
BLOCK_ROWS = 4096
DEFAULT_CHUNK_ROWS = 4 * BLOCK_ROWS
# Bump when the generator's maths changes: it is part of every seed fingerprint.
# 2: partial blocks are prefixes of whole ones (a smaller set is a prefix of a larger one).
GENERATOR_VERSION = 2

# Streams of the generator's SeedSequence; fixed numbers so adding one never shifts the others.
_STREAM_MODEL = 1
_STREAM_BASE = 2
_STREAM_QUERIES = 3


class VectorDataError(ValueError):
    """Embeddings that cannot be used; the message says what to change."""


def block_rng(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for (seed, stream, block...): the same key always yields the same draws."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=seed, spawn_key=key)))


def normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if np.any(norms == 0):
        bad = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise VectorDataError(f"row {bad} of a chunk is all zeros: cosine distance is undefined for it")
    normalised: np.ndarray = (rows / norms).astype(np.float32, copy=False)
    return normalised


def check_dim(dim: int) -> None:
    if not 2 <= dim <= MAX_INDEXED_DIM:
        raise VectorDataError(
            f"dimension {dim} is out of range: pgvector indexes `vector` columns of 2..{MAX_INDEXED_DIM} "
            f"dimensions (common: {', '.join(map(str, COMMON_DIMS))})"
        )


@dataclass(frozen=True)
class Chunk:
    """Rows [start, start + len(vectors)) of a source; labels are cluster ids, or None for user files."""

    start: int
    vectors: np.ndarray
    labels: np.ndarray | None


class VectorSource(Protocol):
    """Base rows to load plus a held-out query set drawn from the same distribution."""

    @property
    def count(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def identity(self) -> dict[str, Any]:
        """JSON-able facts that pin the rows' exact content (goes into the seed fingerprint)."""
        ...

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]: ...

    def queries(self) -> np.ndarray: ...


@dataclass(frozen=True)
class _ClusterModel:
    basis_t: np.ndarray
    offsets: np.ndarray
    axes: np.ndarray
    cum_weights: np.ndarray


class ClusteredVectors:
    """A mixture of anisotropic Gaussian clusters of varied sizes, projected onto the unit sphere.

    Sentence-embedding sets are not uniform on the sphere: they sit in a cone around a common mean
    direction, their variance is concentrated in a few dozen directions (a decaying PCA spectrum), and
    topics form clusters of very different sizes and shapes. Uniform noise makes every neighbour almost
    equidistant, so recall on it says nothing; this generator reproduces those three properties.
    """

    # Latent variance of direction i falls as (i + 1) ** -(2 * decay): with 0.4 the generated sets have a
    # participation ratio of about 30 at 384 dimensions (40 at 768): a few dozen directions matter.
    SPECTRUM_DECAY = 0.4
    # Weight of the shared mean direction: random pairs end up at a cosine of about 0.2-0.25.
    MEAN_WEIGHT = 0.6
    # Median within-cluster spread relative to the (unit) centroid: members sit at cosine ~0.9 to their
    # cluster's mean direction, ~0.25 to the others'.
    SPREAD = 0.6

    def __init__(self, count: int, dim: int, seed: int, n_clusters: int, n_queries: int) -> None:
        check_dim(dim)
        if count < 1 or n_clusters < 1 or n_queries < 0:
            raise VectorDataError(
                f"need count >= 1, n_clusters >= 1, n_queries >= 0; got {count}, {n_clusters}, {n_queries}"
            )
        self._count = count
        self._dim = dim
        self.seed = seed
        self.n_clusters = n_clusters
        self.n_queries = n_queries

    @property
    def count(self) -> int:
        return self._count

    @property
    def dim(self) -> int:
        return self._dim

    def identity(self) -> dict[str, Any]:
        return {
            "source": "generated",
            "generator_version": GENERATOR_VERSION,
            "count": self._count,
            "dim": self._dim,
            "seed": self.seed,
            "n_clusters": self.n_clusters,
            "n_queries": self.n_queries,
        }

    @cached_property
    def _model(self) -> _ClusterModel:
        # Built on first use: a re-seed that turns out to be a no-op only needs identity().
        rng = block_rng(self.seed, _STREAM_MODEL, self._dim, self.n_clusters)
        dim, k = self._dim, self.n_clusters
        basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        spectrum = (1.0 + np.arange(dim)) ** -self.SPECTRUM_DECAY
        mean_dir = rng.standard_normal(dim)
        mean_dir /= np.linalg.norm(mean_dir)
        centroids = (rng.standard_normal((k, dim)) * spectrum) @ basis.T
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        # Per-cluster stretch along each latent axis: every cluster has its own shape.
        axes = spectrum * np.exp(0.5 * rng.standard_normal((k, dim)))
        # Scale so that a cluster's noise has an expected norm of its spread, whatever its shape.
        spread = self.SPREAD * np.exp(0.25 * rng.standard_normal(k))
        axes *= (spread / np.linalg.norm(axes, axis=1))[:, None]
        weights = np.exp(rng.standard_normal(k))
        return _ClusterModel(
            basis_t=basis.T.astype(np.float32),
            offsets=(self.MEAN_WEIGHT * mean_dir + centroids).astype(np.float32),
            axes=axes.astype(np.float32),
            cum_weights=np.cumsum(weights / weights.sum()),
        )

    def _block(self, stream: int, block: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        model = self._model
        rng = block_rng(self.seed, stream, block)
        # A whole block is drawn even when fewer rows are wanted: a set's last, partial block is then a
        # prefix of the same block in a larger set, so a smaller set is a prefix of a larger one (growth).
        # The arithmetic runs on the whole block too: BLAS may round a 3,000-row product differently.
        labels = np.searchsorted(model.cum_weights, rng.random(BLOCK_ROWS), side="right")
        labels = np.minimum(labels, self.n_clusters - 1).astype(np.int32)
        noise = rng.standard_normal((BLOCK_ROWS, self._dim), dtype=np.float32) * model.axes[labels]
        return normalise(model.offsets[labels] + noise @ model.basis_t)[:rows], labels[:rows]

    def _stream_chunks(self, stream: int, total: int, chunk_rows: int, first_block: int = 0) -> Iterator[Chunk]:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        pending_rows = 0
        emitted = first_block * BLOCK_ROWS
        for block in range(first_block, -(-total // BLOCK_ROWS)):
            rows = min(BLOCK_ROWS, total - block * BLOCK_ROWS)
            pending.append(self._block(stream, block, rows))
            pending_rows += rows
            while pending_rows >= chunk_rows or (pending_rows and emitted + pending_rows == total):
                vectors = pending[0][0] if len(pending) == 1 else np.concatenate([p[0] for p in pending])
                labels = pending[0][1] if len(pending) == 1 else np.concatenate([p[1] for p in pending])
                take = min(chunk_rows, pending_rows)
                yield Chunk(emitted, vectors[:take], labels[:take])
                emitted += take
                pending = [(vectors[take:], labels[take:])] if take < pending_rows else []
                pending_rows -= take

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
        return self._stream_chunks(_STREAM_BASE, self._count, chunk_rows)

    def chunks_from(self, start: int, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
        """The rows from the block holding row `start` on, without generating the ones before it: chunks
        stay aligned to BLOCK_ROWS, so the first may begin up to BLOCK_ROWS - 1 rows before `start`."""
        if not 0 <= start < self._count:
            raise ValueError(f"start must be within 0..{self._count - 1}, got {start}")
        return self._stream_chunks(_STREAM_BASE, self._count, chunk_rows, first_block=start // BLOCK_ROWS)

    def queries(self) -> np.ndarray:
        if self.n_queries == 0:
            return np.empty((0, self._dim), np.float32)
        return np.concatenate([c.vectors for c in self._stream_chunks(_STREAM_QUERIES, self.n_queries, BLOCK_ROWS)])


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


class _FileVectors:
    """Shared logic of the file loaders: the last `n_queries` rows are held out as queries."""

    def __init__(self, path: Path, total_rows: int, dim: int, n_queries: int, expected_dim: int | None) -> None:
        if expected_dim is not None and dim != expected_dim:
            raise VectorDataError(
                f"{path} holds {dim}-dimensional vectors but {expected_dim} were asked for: "
                f"drop --dim or pass --dim {dim}"
            )
        check_dim(dim)
        if total_rows <= n_queries:
            raise VectorDataError(
                f"{path} has {total_rows} rows; at least {n_queries + 1} are needed "
                f"({n_queries} are held out as queries): use a smaller query count or a bigger file"
            )
        self.path = path
        self._dim = dim
        self._count = total_rows - n_queries
        self.n_queries = n_queries
        self._digest: str | None = None

    @property
    def count(self) -> int:
        return self._count

    @property
    def dim(self) -> int:
        return self._dim

    def identity(self) -> dict[str, Any]:
        if self._digest is None:
            self._digest = _file_digest(self.path)
        return {
            "source": "file",
            "path": str(self.path),
            "blake2b": self._digest,
            "count": self._count,
            "dim": self._dim,
            "n_queries": self.n_queries,
        }

    def _rows(self, start: int, stop: int, chunk_rows: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
        start = 0
        for rows in self._rows(0, self._count, chunk_rows):
            yield Chunk(start, _as_float32(rows, self.path, start), None)
            start += len(rows)

    def queries(self) -> np.ndarray:
        parts = list(self._rows(self._count, self._count + self.n_queries, DEFAULT_CHUNK_ROWS))
        if not parts:
            return np.empty((0, self._dim), np.float32)
        return _as_float32(np.concatenate(parts), self.path, self._count)


def _as_float32(rows: np.ndarray, path: Path, start: int) -> np.ndarray:
    out = np.ascontiguousarray(rows, dtype=np.float32)
    if not np.isfinite(out).all():
        bad = start + int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise VectorDataError(f"{path}: row {bad} holds NaN or infinity; pgvector refuses such vectors")
    return out


class NpyVectors(_FileVectors):
    """A 2-D float array saved with numpy.save, read through a memory map (never loaded whole)."""

    def __init__(self, path: Path, n_queries: int, expected_dim: int | None = None) -> None:
        try:
            self._array = np.load(path, mmap_mode="r")
        # An empty file ends numpy's read with EOFError.
        except (OSError, ValueError, EOFError) as exc:
            raise VectorDataError(f"cannot read {path} as a .npy array: {exc}") from None
        if self._array.ndim != 2 or not np.issubdtype(self._array.dtype, np.floating):
            raise VectorDataError(
                f"{path} holds a {self._array.dtype} array of shape {self._array.shape}; "
                "expected a 2-D float array (rows x dimensions)"
            )
        super().__init__(path, self._array.shape[0], self._array.shape[1], n_queries, expected_dim)

    def _rows(self, start: int, stop: int, chunk_rows: int) -> Iterator[np.ndarray]:
        for lo in range(start, stop, chunk_rows):
            yield self._array[lo : min(lo + chunk_rows, stop)]


def _pyarrow() -> Any:
    """pyarrow, an extra: only Parquet embeddings need it."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise VectorDataError(
            "Parquet embeddings need pyarrow: pip install 'dbunit-harness[parquet]' (or give a .npy file)"
        ) from None
    return pyarrow


class ParquetVectors(_FileVectors):
    """One list<float> (or fixed_size_list) column of a Parquet file, read batch by batch."""

    def __init__(self, path: Path, n_queries: int, expected_dim: int | None = None, column: str | None = None) -> None:
        pa = _pyarrow()
        try:
            self._file = pa.parquet.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several unrelated types for an unreadable file
            raise VectorDataError(f"cannot read {path} as Parquet: {exc}") from None
        schema = self._file.schema_arrow
        list_columns = [f.name for f in schema if _is_float_list(f.type)]
        if column is None:
            if len(list_columns) != 1:
                raise VectorDataError(
                    f"{path} has {len(list_columns)} float-list columns ({', '.join(list_columns) or 'none'}); "
                    "name the embedding column"
                )
            column = list_columns[0]
        elif column not in list_columns:
            raise VectorDataError(
                f"{path}: column {column!r} is not a list of floats; float-list columns: {list_columns}"
            )
        self.column = column
        total = self._file.metadata.num_rows
        first = next(self._file.iter_batches(batch_size=1, columns=[column]), None)
        if first is None or total == 0:
            raise VectorDataError(f"{path} has no rows")
        dim = len(first.column(0)[0])
        super().__init__(path, total, dim, n_queries, expected_dim)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "column": self.column}

    def _rows(self, start: int, stop: int, chunk_rows: int) -> Iterator[np.ndarray]:
        position = 0
        for batch in self._file.iter_batches(batch_size=chunk_rows, columns=[self.column]):
            lo, hi = max(start, position), min(stop, position + batch.num_rows)
            position += batch.num_rows
            if lo >= hi:
                if position >= stop:
                    return
                continue
            lists = batch.column(0).slice(lo - (position - batch.num_rows), hi - lo)
            values = lists.flatten().to_numpy(zero_copy_only=False)
            if values.size != (hi - lo) * self._dim:
                raise VectorDataError(
                    f"{self.path}: rows {lo}..{hi} do not all have {self._dim} values (or hold nulls)"
                )
            yield values.reshape(hi - lo, self._dim)


def _is_float_list(kind: Any) -> bool:
    pa = _pyarrow()
    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) and (
        pa.types.is_floating(kind.value_type)
    )


def open_vector_file(path: Path, n_queries: int, expected_dim: int | None = None) -> VectorSource:
    """A user's embeddings (.npy or .parquet) as a VectorSource, its last n_queries rows held out."""
    if not path.is_file():
        raise VectorDataError(f"embeddings file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyVectors(path, n_queries, expected_dim)
    if suffix == ".parquet":
        return ParquetVectors(path, n_queries, expected_dim)
    raise VectorDataError(f"{path}: unsupported embeddings format {suffix!r}; use .npy (numpy.save) or .parquet")
