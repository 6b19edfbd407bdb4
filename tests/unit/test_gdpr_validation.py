"""Input validation of the GDPR functions (functions/common/gdpr_common), without AWS or a database."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions" / "common"))

from gdpr_common.schema import ERASED_TABLES, USER_TABLES, export_prefix, user_cache_pattern
from gdpr_common.validation import (
    MAX_AUDIT_BATCH,
    InvalidInput,
    audit_batch,
    error_result,
    export_request,
    parse_user_id,
    user_request,
)


@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("42", 42), (" 7 ", 7), (3.0, 3), (2**63 - 1, 2**63 - 1)])
def test_user_ids_accepted(value, expected):
    assert parse_user_id(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "between 1 and"),
        (-5, "between 1 and"),
        (2**63, "between 1 and"),
        ("abc", 'positive integer, got "abc"'),
        ("-3", 'positive integer, got "-3"'),
        ("1; DROP TABLE users", "positive integer"),
        (True, "positive integer, got true"),
        (None, "positive integer, got null"),
        (1.5, "whole number"),
        ([1], "positive integer, got list"),
    ],
)
def test_user_ids_rejected_with_the_reason(value, message):
    with pytest.raises(InvalidInput, match=message):
        parse_user_id(value)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "must be a JSON object, got list"),
        ({}, 'no "user_id"'),
        ({"user_id": 1, "cascade": True}, "unknown field"),
    ],
)
def test_user_request_shape(event, message):
    with pytest.raises(InvalidInput, match=message):
        user_request(event)
    assert user_request({"user_id": "12"}) == 12


def test_error_result_is_a_clear_handled_result():
    assert error_result(InvalidInput("user_id must be ...")) == {
        "ok": False,
        "error": {"type": "InvalidInput", "message": "user_id must be ..."},
    }


def test_audit_batch_parses_every_field():
    [entry, bare] = audit_batch(
        {
            "events": [
                {
                    "actor": "svc:backend",
                    "action": "user.login",
                    "subject_user_id": "9",
                    "details": {"ip": "10.0.0.1"},
                    "occurred_at": "2025-01-31T12:00:00Z",
                },
                {"actor": "svc", "action": "noop"},
            ]
        }
    )
    assert entry.subject_user_id == 9
    assert entry.details == '{"ip":"10.0.0.1"}'
    assert entry.occurred_at is not None and entry.occurred_at.utcoffset().total_seconds() == 0
    assert bare.subject_user_id is None and bare.details == "{}" and bare.occurred_at is None


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"events": []}, "non-empty list"),
        ({"events": "x"}, "non-empty list"),
        ({"events": [{"actor": "a", "action": "b"}] * (MAX_AUDIT_BATCH + 1)}, "at most 500"),
        ({"events": [{"actor": "a", "action": "b"}], "extra": 1}, "unknown field"),
        ({"events": [{"actor": "a", "action": "b"}, 3]}, r"events\[1\] must be an object"),
        ({"events": [{"actor": "", "action": "b"}]}, r"events\[0\].actor must be a non-empty string"),
        ({"events": [{"actor": "a b", "action": "b"}]}, r"events\[0\].actor must be at most"),
        ({"events": [{"actor": "a", "action": "b", "who": 1}]}, "unknown field.*who"),
        ({"events": [{"actor": "a", "action": "b", "details": [1]}]}, "details must be an object"),
        ({"events": [{"actor": "a", "action": "b", "details": {"x": float("nan")}}]}, "NaN"),
        ({"events": [{"actor": "a", "action": "b", "occurred_at": "yesterday"}]}, "not an ISO 8601"),
        ({"events": [{"actor": "a", "action": "b", "occurred_at": "2025-01-01T00:00:00"}]}, "needs a time zone"),
        ({"events": [{"actor": "a", "action": "b", "subject_user_id": 0}]}, r"events\[0\].subject_user_id"),
    ],
)
def test_one_bad_entry_rejects_the_whole_batch(event, message):
    with pytest.raises(InvalidInput, match=message):
        audit_batch(event)


def test_tables_cover_every_personal_table_and_keep_the_records():
    assert {t.name for t in USER_TABLES} == {"users", "profiles", "consents", "events", "documents", "gdpr_requests"}
    assert "gdpr_requests" not in {t.name for t in ERASED_TABLES}
    # Children before users, so deleting in this order never violates a foreign key.
    assert [t.name for t in ERASED_TABLES][-1] == "users"


def test_key_and_prefix_naming_cannot_reach_another_user():
    assert user_cache_pattern(1) == "user:1:*"
    assert export_prefix(1) == "exports/user-1/"
    assert not "exports/user-10/x".startswith(export_prefix(1))


def test_an_export_id_given_is_kept_and_a_missing_one_is_the_request_id():
    assert export_request({"user_id": "42", "export_id": "req-7_b"}, "r") == (42, "req-7_b")
    assert export_request({"user_id": 42}, "0f1e2d3c-aaaa-bbbb-cccc-000000000000") == (
        42,
        "0f1e2d3c-aaaa-bbbb-cccc-000000000000",
    )


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"user_id": 1, "export_id": "../user-2/x"}, "export_id must be 1 to 64"),
        ({"user_id": 1, "export_id": ""}, "export_id must be 1 to 64"),
        ({"user_id": 1, "export_id": "a" * 65}, "export_id must be 1 to 64"),
        ({"user_id": 1, "export_id": "-x"}, "starting with a letter or digit"),
        ({"user_id": 1, "export_id": 7}, "got 7"),
        ({"user_id": 1, "format": "csv"}, "takes user_id and export_id"),
        ({"export_id": "x"}, 'no "user_id"'),
    ],
)
def test_export_requests_rejected_with_the_reason(event, message):
    with pytest.raises(InvalidInput, match=message):
        export_request(event, "request-id")
