"""Where a user's data lives. One table list for export, deletion and verification, so they agree."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UserTable:
    name: str
    user_column: str
    # Deleted by data_deletion. gdpr_requests is exported but kept: it is the record of the request
    # itself (like audit_log, which references users by id only so that both outlive a deletion).
    erased: bool = True
    # pgvector columns, which to_jsonb renders as a string; exported as JSON arrays of numbers instead.
    vector_columns: tuple[str, ...] = ()


# Children before the parent: deletion goes in this order, so foreign keys never see an orphan.
USER_TABLES: tuple[UserTable, ...] = (
    UserTable("events", "user_id"),
    UserTable("consents", "user_id"),
    UserTable("documents", "owner_user_id", vector_columns=("embedding",)),
    UserTable("profiles", "user_id"),
    UserTable("gdpr_requests", "user_id", erased=False),
    UserTable("users", "user_id"),
)
ERASED_TABLES = tuple(t for t in USER_TABLES if t.erased)


def user_cache_pattern(user_id: int) -> str:
    """Every Redis key holding a user's data starts with user:{id}: (sessions, cached profile, searches)."""
    return f"user:{int(user_id)}:*"


def export_prefix(user_id: int) -> str:
    """S3 prefix of a user's exports; the trailing slash keeps user 1 from matching user 10's objects."""
    return f"exports/user-{int(user_id)}/"
