"""The application's cache-aside path: read through Redis to PostgreSQL, as the Database Unit's
backend does. Every key is namespaced by user (`user:{id}:...`) so a GDPR deletion can find and remove
all of a user's cached data with one SCAN pattern, and every key has a TTL so ElastiCache's default
volatile-lru policy can evict it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from redis.exceptions import RedisError

PROFILE_TTL_S = 300
SEARCH_TTL_S = 60


def user_prefix(user_id: int) -> str:
    return f"user:{int(user_id)}:"


def user_key_pattern(user_id: int) -> str:
    """The SCAN MATCH pattern covering every cached key of one user."""
    return user_prefix(user_id) + "*"


def profile_key(user_id: int) -> str:
    return user_prefix(user_id) + "profile"


def search_key(user_id: int, embedding: np.ndarray, k: int) -> str:
    digest = hashlib.blake2b(np.asarray(embedding, dtype=np.float32).tobytes(), digest_size=12).hexdigest()
    return user_prefix(user_id) + f"search:{k}:{digest}"


@dataclass
class CacheCounters:
    hits: int = 0
    misses: int = 0
    # Reads that found the cache unreachable and were answered from PostgreSQL alone (degraded, not failed).
    cache_errors: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


PROFILE_FIELDS = ("user_id", "email", "display_name", "full_name", "city", "country", "locale")
PROFILE_SQL = (
    "SELECT u.user_id, u.email, u.display_name, p.full_name, p.city, p.country, p.locale "
    "FROM users u JOIN profiles p USING (user_id) WHERE u.user_id = %s"
)
TENANT_SEARCH_SQL = "SELECT doc_id FROM documents WHERE tenant_id = %s ORDER BY embedding <=> %s LIMIT %s"


class CacheAside:
    """Read-through for user profiles and per-user vector-search results.

    `conn` is a psycopg connection (through the proxy in the application's case); `redis` a redis-py
    client. Not thread-safe: one per worker, as a connection is.
    """

    def __init__(self, redis: Any, conn: Any, profile_ttl_s: int = PROFILE_TTL_S, search_ttl_s: int = SEARCH_TTL_S):
        self.redis = redis
        self.conn = conn
        self.profile_ttl_s = profile_ttl_s
        self.search_ttl_s = search_ttl_s
        self.counters = CacheCounters()

    def _get(self, key: str) -> Any:
        # A cache outage degrades the path to PostgreSQL alone; it must not fail the request.
        # OSError too: a TLS connection cut mid-read can surface as ssl.SSLError or TimeoutError, not wrapped.
        try:
            return self.redis.get(key)
        except (RedisError, OSError):
            self.counters.cache_errors += 1
            return None

    def _set(self, key: str, value: str, ttl_s: int) -> None:
        try:
            self.redis.set(key, value, ex=ttl_s)
        except (RedisError, OSError):
            self.counters.cache_errors += 1

    def profile(self, user_id: int) -> dict[str, Any] | None:
        key = profile_key(user_id)
        errors_before = self.counters.cache_errors
        cached = self._get(key)
        if cached is not None:
            self.counters.hits += 1
            profile: dict[str, Any] = json.loads(cached)
            return profile
        self.counters.misses += 1
        row = self.conn.execute(PROFILE_SQL, (user_id,)).fetchone()
        if row is None:
            return None
        value = dict(zip(PROFILE_FIELDS, row, strict=True))
        # A failed GET means the cache is unreachable: a SET would wait out the same timeout for nothing.
        if self.counters.cache_errors == errors_before:
            self._set(key, json.dumps(value), self.profile_ttl_s)
        return value

    def read_through(self, key: str, ttl_s: int, load: Callable[[], Any]) -> Any:
        """Any read a team's configuration names (harness.workload.target.CacheRead): the cached JSON under
        `key`, else `load()`'s result, stored with `ttl_s` (dates and decimals as text)."""
        cached = self.redis.get(key)
        if cached is not None:
            self.counters.hits += 1
            return json.loads(cached)
        self.counters.misses += 1
        value = load()
        self.redis.set(key, json.dumps(value, default=str), ex=ttl_s)
        return value

    def search(self, user_id: int, tenant_id: int, embedding: np.ndarray, k: int = 10) -> list[int]:
        key = search_key(user_id, embedding, k)
        cached = self._get(key)
        if cached is not None:
            self.counters.hits += 1
            ids: list[int] = json.loads(cached)
            return ids
        self.counters.misses += 1
        ids = [row[0] for row in self.conn.execute(TENANT_SEARCH_SQL, (tenant_id, embedding, k)).fetchall()]
        self._set(key, json.dumps(ids), self.search_ttl_s)
        return ids


def warm_profiles(redis: Any, conn: Any, user_ids: list[int], ttl_s: int = PROFILE_TTL_S, batch: int = 500) -> int:
    """The document's warm_cache_with_critical_data: load the given (hottest) users' profiles into the cache
    in a few queries and pipelined SETs, before traffic has to miss on them one by one. Returns keys written."""
    written = 0
    for lo in range(0, len(user_ids), batch):
        chunk = [int(u) for u in user_ids[lo : lo + batch]]
        rows = conn.execute(PROFILE_SQL.replace("= %s", "= ANY(%s)"), (chunk,)).fetchall()
        pipe = redis.pipeline(transaction=False)
        for row in rows:
            value = dict(zip(PROFILE_FIELDS, row, strict=True))
            pipe.set(profile_key(value["user_id"]), json.dumps(value), ex=ttl_s)
        pipe.execute()
        written += len(rows)
    return written


def delete_user_keys(redis: Any, user_id: int, batch: int = 500) -> int:
    """Remove every cached key of one user (SCAN, never KEYS: KEYS blocks the server)."""
    removed = 0
    pending: list[Any] = []
    for key in redis.scan_iter(match=user_key_pattern(user_id), count=batch):
        pending.append(key)
        if len(pending) >= batch:
            removed += redis.unlink(*pending)
            pending.clear()
    if pending:
        removed += redis.unlink(*pending)
    return removed
