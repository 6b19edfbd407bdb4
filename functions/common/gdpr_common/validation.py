"""Input validation: every check runs before anything is changed, and says what was wrong."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# PostgreSQL bigint, the type of users.user_id.
MAX_USER_ID = 2**63 - 1
MAX_AUDIT_BATCH = 500
MAX_AUDIT_DETAILS_BYTES = 64 * 1024
MAX_LABEL_CHARS = 128
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]*$")
# An export id becomes part of an S3 key: no slash, no dot-dot, nothing to escape.
_EXPORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_AUDIT_FIELDS = {"actor", "action", "subject_user_id", "details", "occurred_at"}


class InvalidInput(ValueError):
    """The event cannot be processed as given; nothing was changed."""


def _show(value: Any, limit: int = 60) -> str:
    """The offending value as JSON, cut short: an error names what was wrong without echoing a megabyte."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def error_result(exc: Exception, kind: str = "InvalidInput") -> dict[str, Any]:
    return {"ok": False, "error": {"type": kind, "message": str(exc)}}


def _event_object(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise InvalidInput(f"the event must be a JSON object, got {type(event).__name__}")
    return event


def parse_user_id(value: Any, field: str = "user_id") -> int:
    """A positive bigint; numeric strings are accepted (API Gateway passes path parameters as strings)."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{field} must be a positive integer, got {_show(value)}")
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only: str.isdigit() also accepts "²" (which int() refuses) and other scripts' digits;
        # a bigint has at most 19 digits (and int() refuses strings past 4,300).
        if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_USER_ID)):
            raise InvalidInput(f"{field} must be a positive integer, got {_show(value)}")
        value = int(text)
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidInput(f"{field} must be a whole number, got {_show(value)}")
        value = int(value)
    if not isinstance(value, int):
        raise InvalidInput(f"{field} must be a positive integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_USER_ID:
        raise InvalidInput(f"{field} must be between 1 and {MAX_USER_ID}, got {_show(value)}")
    return value


def user_request(event: Any) -> int:
    """The user id of an export or deletion event: {"user_id": 42}."""
    body = _event_object(event)
    if "user_id" not in body:
        raise InvalidInput('the event has no "user_id": send {"user_id": <positive integer>}')
    unknown = sorted(set(body) - {"user_id"})
    if unknown:
        raise InvalidInput(f"unknown field(s) {_show(unknown)}: the event takes only user_id")
    return parse_user_id(body["user_id"])


def export_request(event: Any, default_id: str) -> tuple[int, str]:
    """The user id and export id of an export event: {"user_id": 42, "export_id": "req-7"}.

    The export id is the request's idempotency key: the object's name and the audit entry's key, so a retry
    with the same id replaces the same object and is audited once. `default_id` (the invocation's request id,
    which Lambda keeps across its own retries of an asynchronous invocation) applies when the caller sends none.
    """
    body = _event_object(event)
    if "user_id" not in body:
        raise InvalidInput('the event has no "user_id": send {"user_id": <positive integer>}')
    unknown = sorted(set(body) - {"user_id", "export_id"})
    if unknown:
        raise InvalidInput(f"unknown field(s) {_show(unknown)}: the event takes user_id and export_id")
    user_id = parse_user_id(body["user_id"])
    export_id = body.get("export_id", default_id)
    if not isinstance(export_id, str) or not _EXPORT_ID.match(export_id):
        raise InvalidInput(
            "export_id must be 1 to 64 letters, digits, _ or - (starting with a letter or digit), "
            f"got {_show(export_id, 40)}"
        )
    return user_id, export_id


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    action: str
    subject_user_id: int | None
    details: str  # JSON text
    occurred_at: datetime | None


def _label(entry: dict[str, Any], field: str, position: int) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"events[{position}].{field} must be a non-empty string, got {_show(value)}")
    if len(value) > MAX_LABEL_CHARS or not _LABEL.match(value):
        raise InvalidInput(
            f"events[{position}].{field} must be at most {MAX_LABEL_CHARS} characters of letters, digits and "
            f"_ . : @ / - (starting with a letter or digit), got {_show(value, 40)}"
        )
    return value


def audit_batch(event: Any) -> list[AuditEvent]:
    """{"events": [{"actor", "action", "subject_user_id"?, "details"?, "occurred_at"?}, ...]}."""
    body = _event_object(event)
    entries = body.get("events")
    if not isinstance(entries, list) or not entries:
        raise InvalidInput('the event needs "events": a non-empty list of audit entries')
    if len(entries) > MAX_AUDIT_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_AUDIT_BATCH} entries, got {len(entries)}: split it")
    unknown = sorted(set(body) - {"events"})
    if unknown:
        raise InvalidInput(f"unknown field(s) {_show(unknown)}: the event takes only events")
    parsed = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidInput(f"events[{position}] must be an object, got {type(entry).__name__}")
        extra = sorted(set(entry) - _AUDIT_FIELDS)
        if extra:
            raise InvalidInput(
                f"events[{position}] has unknown field(s) {_show(extra)}; known: {', '.join(sorted(_AUDIT_FIELDS))}"
            )
        subject = entry.get("subject_user_id")
        details = entry.get("details", {})
        if not isinstance(details, dict):
            raise InvalidInput(f"events[{position}].details must be an object, got {type(details).__name__}")
        try:
            details_text = json.dumps(details, separators=(",", ":"), allow_nan=False)
        except ValueError:
            raise InvalidInput(f"events[{position}].details holds NaN or Infinity, which JSON cannot store") from None
        if len(details_text.encode()) > MAX_AUDIT_DETAILS_BYTES:
            raise InvalidInput(f"events[{position}].details exceeds {MAX_AUDIT_DETAILS_BYTES} bytes as JSON")
        occurred_at = None
        if entry.get("occurred_at") is not None:
            raw = entry["occurred_at"]
            try:
                occurred_at = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInput(
                    f"events[{position}].occurred_at is not an ISO 8601 timestamp: {_show(raw)}"
                ) from None
            if occurred_at.tzinfo is None:
                raise InvalidInput(f"events[{position}].occurred_at needs a time zone (e.g. 2025-01-31T12:00:00Z)")
        subject_user_id = None if subject is None else parse_user_id(subject, f"events[{position}].subject_user_id")
        parsed.append(
            AuditEvent(
                actor=_label(entry, "actor", position),
                action=_label(entry, "action", position),
                subject_user_id=subject_user_id,
                details=details_text,
                occurred_at=occurred_at,
            )
        )
    return parsed
