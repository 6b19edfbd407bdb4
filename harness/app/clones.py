"""Throw-away copies of seeded users, for work that destroys a user (a GDPR deletion) without touching
the seeded data. Documents are not copied: they are the vector-search corpus, whose ground truth a
deletion would invalidate.
"""

from __future__ import annotations

from typing import Any

# Children before the parent: what `discard_clone` deletes, in order.
CLONED_TABLES = ("events", "consents", "profiles", "users")


def clone_user(conn: Any, source: int, tag: str = "clone") -> int:
    """Copy `source` and its personal data on `conn` (in the caller's transaction); the new user id."""
    new_id = conn.execute(
        "INSERT INTO users (tenant_id, email, display_name, status, created_at, updated_at) "
        "SELECT tenant_id, %s || '-' || gen_random_uuid() || '@example.test', display_name, status, "
        "created_at, updated_at FROM users WHERE user_id = %s RETURNING user_id",
        (tag, source),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO profiles SELECT %s, full_name, date_of_birth, phone, street, city, country, locale, "
        "updated_at FROM profiles WHERE user_id = %s",
        (new_id, source),
    )
    conn.execute(
        "INSERT INTO consents (user_id, purpose, granted, recorded_at, source) "
        "SELECT %s, purpose, granted, recorded_at, source FROM consents WHERE user_id = %s",
        (new_id, source),
    )
    conn.execute(
        "INSERT INTO events (user_id, occurred_at, event_type, ip_address, user_agent, payload) "
        "SELECT %s, occurred_at, event_type, ip_address, user_agent, payload FROM events WHERE user_id = %s",
        (new_id, source),
    )
    return int(new_id)


def discard_clone(conn: Any, clone: int) -> None:
    """Remove a clone whose deletion did not happen, so a failed run leaves no users behind."""
    for table in CLONED_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE user_id = %s", (clone,))
