"""Seed profiles: the one place where data sizes are named.

`ci` loads in seconds; `default` (100k x 384) fits the db.t3.micro profile's 1 GiB with its index;
`large` (1M x 384, about 1.5 GiB of vectors before any index) overflows it on purpose, to show the
memory cliff the reference figures describe.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from harness.data.vectors import VectorDataError, check_dim

INDEX_KINDS = ("hnsw", "ivfflat", "none")
# What the index build may use; RDS's t3.micro default is 64MB, which makes HNSW builds spill.
DEFAULT_BUILD_MEMORY = "512MB"
_MEMORY = re.compile(r"^[1-9][0-9]*(kB|MB|GB)$")


class SeedProfileError(ValueError):
    """A profile or override that cannot be seeded; the message says what to change."""


@dataclass(frozen=True)
class IndexSpec:
    kind: str = "hnsw"
    # pgvector's own defaults.
    m: int = 16
    ef_construction: int = 64
    # IVFFlat lists; None means pgvector's guidance (rows / 1000 up to 1M rows, sqrt(rows) above).
    lists: int | None = None
    build_memory: str = DEFAULT_BUILD_MEMORY

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise SeedProfileError(f"index must be one of {', '.join(INDEX_KINDS)}, got {self.kind!r}")
        if not 2 <= self.m <= 100:
            raise SeedProfileError(f"HNSW m must be between 2 and 100 (pgvector's range), got {self.m}")
        if not 4 <= self.ef_construction <= 1000 or self.ef_construction < 2 * self.m:
            raise SeedProfileError(
                f"HNSW ef_construction must be 4..1000 and at least 2 * m ({2 * self.m}), got {self.ef_construction}"
            )
        if not _MEMORY.match(self.build_memory):
            raise SeedProfileError(f"build memory must look like 512MB, 64MB or 1GB, got {self.build_memory!r}")
        if self.lists is not None and not 1 <= self.lists <= 32768:
            raise SeedProfileError(f"IVFFlat lists must be between 1 and 32768, got {self.lists}")

    def ivfflat_lists(self, rows: int) -> int:
        if self.lists is not None:
            return self.lists
        return max(1, rows // 1000) if rows <= 1_000_000 else int(rows**0.5)

    def describe(self, rows: int) -> str:
        if self.kind == "hnsw":
            return f"hnsw (m={self.m}, ef_construction={self.ef_construction}, vector_cosine_ops)"
        if self.kind == "ivfflat":
            return f"ivfflat (lists={self.ivfflat_lists(rows)}, vector_cosine_ops)"
        return "none"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SeedProfile:
    name: str
    users: int
    vectors: int
    dim: int = 384
    seed: int = 42
    # Topic clusters among the vectors; their sizes vary by more than an order of magnitude.
    clusters: int = 128
    queries: int = 1000
    # Depth of the stored ground truth: recall@k works for any k up to this.
    k: int = 100
    # Activity is heavy-tailed: this is the mean; the busiest users reach max_events_per_user.
    events_per_user: float = 20.0
    max_events_per_user: int = 5000
    index: IndexSpec = IndexSpec()

    def __post_init__(self) -> None:
        if self.users < 1:
            raise SeedProfileError(f"users must be at least 1, got {self.users}")
        if self.vectors < 1:
            raise SeedProfileError(f"vectors must be at least 1, got {self.vectors}")
        try:
            check_dim(self.dim)
        except VectorDataError as exc:
            raise SeedProfileError(str(exc)) from None
        if not 0 <= self.seed < 2**63:
            raise SeedProfileError(f"seed must be a non-negative 63-bit integer, got {self.seed}")
        if self.clusters < 1:
            raise SeedProfileError(f"clusters must be at least 1, got {self.clusters}")
        if self.queries < 1:
            raise SeedProfileError(f"queries must be at least 1, got {self.queries}")
        if not 1 <= self.k <= self.vectors:
            raise SeedProfileError(f"k must be between 1 and the number of vectors ({self.vectors}), got {self.k}")
        if self.events_per_user < 0 or self.max_events_per_user < 0:
            raise SeedProfileError("events_per_user and max_events_per_user must not be negative")

    def with_overrides(self, **changes: Any) -> SeedProfile:
        """A copy with the given fields changed; None means "keep the profile's value"."""
        index_changes = {k: changes.pop(k) for k in list(changes) if k in _INDEX_FIELDS}
        changes = {k: v for k, v in changes.items() if v is not None}
        index_changes = {k: v for k, v in index_changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise SeedProfileError(f"unknown profile field(s): {', '.join(sorted(unknown))}")
        if index_changes:
            changes["index"] = dataclasses.replace(self.index, **index_changes)
        if "vectors" in changes and "k" not in changes:
            changes["k"] = min(self.k, changes["vectors"])
        return dataclasses.replace(self, **changes)


_INDEX_FIELDS = {f.name for f in dataclasses.fields(IndexSpec)}

PROFILES: dict[str, SeedProfile] = {
    p.name: p
    for p in (
        SeedProfile(
            "ci", users=200, vectors=5_000, clusters=32, queries=100, events_per_user=10, max_events_per_user=500
        ),
        SeedProfile("default", users=10_000, vectors=100_000, clusters=128),
        SeedProfile("large", users=100_000, vectors=1_000_000, clusters=512),
    )
}


def get_profile(name: str, **overrides: Any) -> SeedProfile:
    """A named profile with overrides applied (users, vectors, dim, seed, kind, m, ef_construction...)."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise SeedProfileError(f"unknown seed profile {name!r}; known: {', '.join(PROFILES)}") from None
    return profile.with_overrides(**overrides)
