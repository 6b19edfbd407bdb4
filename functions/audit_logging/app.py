"""audit_logging: append a batch of audit events to the append-only audit_log, all or none.

Event: {"events": [{"actor": "svc:backend", "action": "user.login", "subject_user_id": 42,
"details": {...}, "occurred_at": "2025-01-31T12:00:00Z"}, ...]} (subject_user_id, details and occurred_at
are optional; at most 500 entries). Result: {"ok": true, "inserted": n}, or {"ok": false, "error": {...}}
when any entry is invalid, in which case none is written.
"""

from __future__ import annotations

import time
from typing import Any

from gdpr_common.logs import log
from gdpr_common.resources import db, prepare, schema
from gdpr_common.validation import InvalidInput, audit_batch, error_result
from psycopg import sql

prepare("secretsmanager")


def handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        entries = audit_batch(event)
    except InvalidInput as exc:
        log("WARNING", "rejected audit batch", context, reason=str(exc))
        return error_result(exc)
    conn = db()
    statement = sql.SQL(
        "INSERT INTO {} (actor, action, subject_user_id, details, occurred_at) "
        "VALUES (%s, %s, %s, %s::jsonb, coalesce(%s, now()))"
    ).format(sql.Identifier(schema(), "audit_log"))
    with conn.transaction(), conn.cursor() as cursor:
        # executemany pipelines the rows: one round trip per batch, not per entry.
        cursor.executemany(
            statement,
            [(e.actor, e.action, e.subject_user_id, e.details, e.occurred_at) for e in entries],
        )
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    log("INFO", "audit batch appended", context, inserted=len(entries), elapsed_ms=elapsed_ms)
    return {"ok": True, "inserted": len(entries)}
