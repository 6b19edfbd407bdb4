"""Lambda durations: the GDPR functions, deployed to the stack's Lambda endpoint at the document's memory
sizes, across user data volumes; error rate; throttles under a burst past the concurrency limit; and the
largest export that would stay under the 180 s duration warning at 512 MB.

Each function runs at least the size's `lambda_invocations` times, spread over its inputs, so that its error
rate is judged over enough invocations to be conclusive against the 5 % warning.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.app.clones import clone_user
from harness.app.gdpr_deploy import deploy_to_stack
from harness.app.gdpr_invoke import InvocationSeries, invoke_series, lambda_client
from harness.backends.guard import require_destructive_allowed
from harness.measure.results import ResultsWriter

DURATION_WARNING_MS = 180_000
# Invocations per user in a measured series: the first may be a cold start, the rest are warm.
REPEATS = 3
EXPORT_USERS = 5
AUDIT_BATCH_SIZES = (1, 50, 500)
DELETION_USERS = 3


def repeats(size, inputs: int, least: int = REPEATS) -> int:
    """Invocations per input so that `inputs` inputs reach the size's invocations per function."""
    return max(least, math.ceil(size.lambda_invocations / inputs))


@pytest.fixture(scope="module")
def client(stack, harness_settings, seeded):
    deploy_to_stack(stack, harness_settings.state_dir, unit=harness_settings.unit)
    return lambda_client(stack.aws)


def record_series(results: ResultsWriter, series: InvocationSeries, labels: dict[str, object]) -> None:
    function = series.function
    if series.durations_ms:
        results.record_latency(f"lambda.{function}.duration_ms", series.durations_ms, labels)
        # What the month is projected from: Lambda charges Billed Duration, not Duration.
        results.record_latency(f"lambda.{function}.billed_duration_ms", series.billed_durations_ms, labels)
    ran = len(series.invocations) - series.throttles
    results.record_rate(f"lambda.{function}.error_rate_pct", series.errors, ran, labels)
    results.record_count(f"lambda.{function}.throttles", series.throttles, labels)


def users_across_volumes(seeded, count: int) -> list[tuple[int, int]]:
    """(user_id, rows of personal data) from the smallest user to the largest, spread by rank."""
    with seeded.app_direct.connect(autocommit=True, prepare_threshold=None) as conn:
        rows = conn.execute(
            "SELECT u.user_id, 1 + (SELECT count(*) FROM events e WHERE e.user_id = u.user_id) "
            "+ (SELECT count(*) FROM consents c WHERE c.user_id = u.user_id) "
            "+ (SELECT count(*) FROM documents d WHERE d.owner_user_id = u.user_id) AS n "
            "FROM users u ORDER BY n, u.user_id"
        ).fetchall()
    picks = sorted({round(i) for i in np.linspace(0, len(rows) - 1, count)})
    return [(rows[i][0], rows[i][1]) for i in picks]


def test_export_durations_across_user_volumes(client, seeded, results, size):
    points = []
    for user_id, volume in users_across_volumes(seeded, EXPORT_USERS):
        series = invoke_series(client, "data_export", [{"user_id": user_id}], repeats(size, EXPORT_USERS))
        record_series(results, series, {"volume": "by_user"})
        assert series.errors == 0, [i.payload for i in series.invocations if i.function_error]
        answers = [i.payload for i in series.invocations if i.payload]
        assert all(a.get("ok") for a in answers), answers[:1]
        warm = min(series.durations_ms)
        points.append({"rows": float(volume), "duration_ms": warm})
        print(f"data_export user {user_id} ({volume} rows): warm {warm:.1f} ms, {series.summary()['duration_ms']}")
    results.record_series("lambda.data_export.scaling", points)
    # Duration grows with rows: fit a line through the warm durations and find where it crosses 180 s.
    rows = np.array([p["rows"] for p in points])
    durations = np.array([p["duration_ms"] for p in points])
    slope, intercept = np.polyfit(rows, durations, 1)
    if slope > 0:
        limit = (DURATION_WARNING_MS - intercept) / slope
        results.record_value("lambda.data_export.rows_within_warning", float(limit))
        print(f"data_export: {slope * 1000:.3f} ms per 1,000 rows; about {limit:,.0f} rows fit under 180 s at 512 MB")
    assert durations[-1] >= durations[0], "the largest user's export was faster than the smallest's"


def test_audit_logging_durations_by_batch_size(client, results, size):
    for batch_size in AUDIT_BATCH_SIZES:
        events = [{"actor": "scenario", "action": "load.test", "details": {"i": i}} for i in range(batch_size)]
        batch = {"events": events}
        series = invoke_series(client, "audit_logging", [batch], repeats(size, len(AUDIT_BATCH_SIZES)))
        record_series(results, series, {"batch": batch_size})
        assert series.errors == 0
        expected = {"ok": True, "inserted": batch_size}
        assert all(i.payload == expected for i in series.invocations), series.invocations[0]
        print(f"audit_logging batch {batch_size}: {series.summary()['duration_ms']}")


def clone_users(seeded, sources: list[int]) -> list[int]:
    with seeded.app_direct.connect(prepare_threshold=None) as conn, conn.transaction():
        return [clone_user(conn, source) for source in sources]


def test_deletion_durations_and_nothing_left(stack, client, seeded, results, size):
    require_destructive_allowed(stack)
    # Each clone is deleted twice (the retry must be a no-op), so the users, not the repeats, make the count.
    users = max(DELETION_USERS, math.ceil(size.lambda_invocations / 2))
    sources = [user for user, _ in users_across_volumes(seeded, users)]
    for user_id in clone_users(seeded, sources):
        series = invoke_series(client, "data_deletion", [{"user_id": user_id}], 2)
        record_series(results, series, {"volume": "by_user"})
        assert series.errors == 0, [i.payload for i in series.invocations if i.function_error]
        first, retry = (i.payload for i in series.invocations)
        assert first["ok"] and first["verified"] and first["user_existed"]
        assert retry["ok"] and not retry["user_existed"], "a retried deletion must be a harmless no-op"
        with seeded.app_direct.connect(autocommit=True, prepare_threshold=None) as conn:
            left = conn.execute(
                "SELECT (SELECT count(*) FROM users WHERE user_id = %(u)s) + "
                "(SELECT count(*) FROM events WHERE user_id = %(u)s) + "
                "(SELECT count(*) FROM consents WHERE user_id = %(u)s)",
                {"u": user_id},
            ).fetchone()[0]
        assert left == 0
        print(f"data_deletion user {user_id}: {series.summary()['duration_ms']}")


def test_burst_past_the_concurrency_limit_is_throttled(stack, client, seeded, results):
    limit = int(stack.facts.get("lambda", {}).get("concurrency_limit", 0))
    if not limit:
        pytest.skip("the Lambda endpoint does not report its concurrency limit")
    biggest = users_across_volumes(seeded, 2)[-1][0]
    series = invoke_series(client, "data_export", [{"user_id": biggest}], 3 * limit, concurrency=2 * limit)
    results.record_count("lambda.burst_throttles", series.throttles, {"function": "data_export"})
    print(f"burst of {3 * limit} exports, {2 * limit} at once, limit {limit}: {series.throttles} throttled")
    assert series.throttles > 0, "more concurrent invocations than the limit, and none was throttled"
    assert series.errors == 0
