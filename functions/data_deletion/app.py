"""data_deletion: erase one user's data from the database, the cache and the exports bucket, then prove it.

Event: {"user_id": 42}. Result: {"ok": true, "rows_deleted", "cache_keys_deleted", "export_objects_deleted",
"verified": true}, or {"ok": false, "error": {...}} for input that cannot be processed (nothing changes).

Order and atomicity: the rows go first, in one transaction that also writes the audit entry, with the
user's row locked FOR UPDATE so no concurrent insert can add a child row behind it (foreign keys wait on
that lock, then fail). Only after the commit are the cache keys and export objects removed: deleting
cache entries before the commit would let a concurrent read re-cache the old rows. Every step is
idempotent, so a retry after any failure (Lambda retries failed asynchronous invocations) finishes the
job. Finally independent queries check that no row, key or object is left; if any is, the invocation
fails with the list, so the caller retries rather than believing it done.

Kept on purpose: audit_log (append-only, the legal record) and gdpr_requests (the request itself); both
reference the user by id only.
"""

from __future__ import annotations

import time
from typing import Any

from gdpr_common.logs import log
from gdpr_common.resources import cache, client, db, prepare, schema, setting
from gdpr_common.schema import ERASED_TABLES, export_prefix, user_cache_pattern
from gdpr_common.validation import InvalidInput, error_result, user_request
from psycopg import sql
from psycopg.types.json import Jsonb

prepare("secretsmanager", "s3")

ACTION = "gdpr.deletion"
SCAN_COUNT = 1000
# DeleteObjects takes at most 1,000 keys per call.
DELETE_BATCH = 1000
# Waiting this long for a lock held by a concurrent writer fails the invocation (it is retried) instead
# of holding a proxy connection for the whole function timeout.
LOCK_TIMEOUT = "10s"


class DeletionIncomplete(RuntimeError):
    """Something of the user's survived the deletion; the invocation fails so that it is retried."""


def _delete_rows(user_id: int, actor: str) -> tuple[dict[str, int], bool]:
    conn = db()
    counts: dict[str, int] = {}
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        users = sql.Identifier(schema(), "users")
        existed = (
            conn.execute(sql.SQL("SELECT 1 FROM {} WHERE user_id = %s FOR UPDATE").format(users), (user_id,)).fetchone()
            is not None
        )
        for table in ERASED_TABLES:
            cursor = conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                    sql.Identifier(schema(), table.name), sql.Identifier(table.user_column)
                ),
                (user_id,),
            )
            counts[table.name] = cursor.rowcount
        conn.execute(
            sql.SQL("INSERT INTO {} (actor, action, subject_user_id, details) VALUES (%s, %s, %s, %s)").format(
                sql.Identifier(schema(), "audit_log")
            ),
            (actor, ACTION, user_id, Jsonb({"rows_deleted": counts, "user_existed": existed})),
        )
    return counts, existed


def _delete_cache(user_id: int) -> int:
    redis = cache()
    deleted = 0
    batch: list[bytes] = []
    for key in redis.scan_iter(match=user_cache_pattern(user_id), count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= SCAN_COUNT:
            deleted += redis.unlink(*batch)
            batch.clear()
    if batch:
        deleted += redis.unlink(*batch)
    return deleted


def _export_keys(bucket: str, user_id: int) -> list[str]:
    paginator = client("s3").get_paginator("list_objects_v2")
    keys = []
    for page in paginator.paginate(Bucket=bucket, Prefix=export_prefix(user_id)):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def _delete_exports(bucket: str, user_id: int) -> int:
    keys = _export_keys(bucket, user_id)
    s3 = client("s3")
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        if response.get("Errors"):
            first = response["Errors"][0]
            raise DeletionIncomplete(f"S3 refused to delete {first.get('Key')}: {first.get('Message')}")
    return len(keys)


def _leftovers(user_id: int, bucket: str) -> list[str]:
    conn = db()
    found = []
    for table in ERASED_TABLES:
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
            sql.Identifier(schema(), table.name), sql.Identifier(table.user_column)
        )
        row = conn.execute(query, (user_id,)).fetchone()
        if row and row[0]:
            found.append(f"{row[0]} row(s) in {table.name}")
    keys = sum(1 for _ in cache().scan_iter(match=user_cache_pattern(user_id), count=SCAN_COUNT))
    if keys:
        found.append(f"{keys} cache key(s)")
    objects = len(_export_keys(bucket, user_id))
    if objects:
        found.append(f"{objects} export object(s)")
    return found


def handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        user_id = user_request(event)
    except InvalidInput as exc:
        log("WARNING", "rejected deletion request", context, reason=str(exc))
        return error_result(exc)
    bucket = setting("EXPORTS_BUCKET")
    actor = f"lambda:{getattr(context, 'function_name', 'data_deletion')}"
    rows, existed = _delete_rows(user_id, actor)
    keys = _delete_cache(user_id)
    objects = _delete_exports(bucket, user_id)
    remaining = _leftovers(user_id, bucket)
    if remaining:
        log("ERROR", "deletion left data behind", context, user_id=user_id, remaining=remaining)
        raise DeletionIncomplete(f"user {user_id}: still found {', '.join(remaining)} after deletion; retry")
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    log(
        "INFO",
        "user erased",
        context,
        user_id=user_id,
        user_existed=existed,
        rows_deleted=rows,
        cache_keys_deleted=keys,
        export_objects_deleted=objects,
        elapsed_ms=elapsed_ms,
    )
    return {
        "ok": True,
        "user_id": user_id,
        "user_existed": existed,
        "rows_deleted": rows,
        "cache_keys_deleted": keys,
        "export_objects_deleted": objects,
        "verified": True,
    }
