"""The GDPR functions on the local Lambda runtime, and the runtime's Lambda semantics, against the real stack.

The functions run against a throw-away database seeded with the `ci` profile, their own exports bucket
and their own Redis database, so the stack's data, cache and exports are never touched. Every check of
what a function did is an independent query (SQL on the direct endpoint, Redis, S3), not the function's
own report.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gzip
import io
import json
import math
import re
import secrets
import socket
import threading
import time
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from harness.app.gdpr_deploy import deploy, redis_secret_document, stack_options
from harness.app.gdpr_invoke import invoke, invoke_series, lambda_client
from harness.data.profiles import get_profile
from harness.data.seed import seed
from harness.endpoints import PostgresEndpoint, Secret, StackEndpoints
from harness.lambda_runtime.report_line import parse_report_line
from harness.monitoring.evidence import logs_evidence
from harness.security.rotation import rotate
from harness.services.lambda_server import LambdaRuntimeService
from harness.services.process import PidFiles

pytestmark = pytest.mark.integration

DB_NAME = "dbunit_lambdatest"
ROLE = "dbunit_app_lambdatest"
PREFIX = "test-"
BUCKET = "dbunit-gdpr-exports-lambdatest"
DB_SECRET = "dbunit/test/lambdas-db"
REDIS_SECRET = "dbunit/test/lambdas-redis"
# Redis database 0 is the application's; the functions under test work in this one.
REDIS_DB = 3
ERASED = ("events", "consents", "documents", "profiles", "users")
ALL_USER_TABLES = {**dict.fromkeys(ERASED, "user_id"), "documents": "owner_user_id", "gdpr_requests": "user_id"}


@dataclass
class Deployed:
    stack: StackEndpoints
    admin: PostgresEndpoint
    client: Any

    def invoke(self, function: str, payload: Any):
        return invoke(self.client, PREFIX + function, payload)

    def redis(self):
        return dataclasses.replace(self.stack.redis, db=REDIS_DB).client()

    def rows(self, user_id: int) -> dict[str, int]:
        with self.admin.connect(autocommit=True) as conn:
            return {
                table: conn.execute(
                    sql.SQL("SELECT count(*) FROM app.{} WHERE {} = %s").format(
                        sql.Identifier(table), sql.Identifier(column)
                    ),
                    (user_id,),
                ).fetchone()[0]
                for table, column in ALL_USER_TABLES.items()
            }

    def audit_actions(self, user_id: int, column: str = "action", action: str | None = None) -> list[str]:
        """`column` (an SQL expression) of the user's audit entries, oldest first; only `action`'s if given."""
        with self.admin.connect(autocommit=True) as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT {} FROM app.audit_log WHERE subject_user_id = %s AND action = coalesce(%s, action) "
                    "ORDER BY audit_id"
                ).format(sql.SQL(column)),
                (user_id, action),
            ).fetchall()
        return [r[0] for r in rows]

    def export_keys(self, user_id: int) -> list[str]:
        s3 = self.stack.aws.client("s3")
        listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"exports/user-{user_id}/")
        return [item["Key"] for item in listing.get("Contents", [])]

    def busiest_users(self, count: int) -> list[int]:
        with self.admin.connect(autocommit=True) as conn:
            rows = conn.execute(
                "SELECT u.user_id FROM app.users u LEFT JOIN app.events e USING (user_id) "
                "GROUP BY u.user_id ORDER BY count(e.*) DESC, u.user_id LIMIT %s",
                (count,),
            ).fetchall()
        return [r[0] for r in rows]


def _put_secret(stack: StackEndpoints, secret_id: str, document: dict[str, Any]) -> None:
    sm = stack.aws.client("secretsmanager")
    try:
        sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(document))
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=secret_id, SecretString=json.dumps(document))


@pytest.fixture(scope="module")
def gdpr(stack: StackEndpoints, tmp_path_factory) -> Iterator[Deployed]:
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME))
    with stack.direct.connect(autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    admin = dataclasses.replace(stack.direct, dbname=DB_NAME)
    password = secrets.token_urlsafe(18)
    seed(admin, get_profile("ci"), tmp_path_factory.mktemp("data"), password, app_role=ROLE, progress=False)
    _put_secret(
        stack,
        DB_SECRET,
        {
            "engine": "postgres",
            "host": stack.proxy.host,
            "port": stack.proxy.port,
            "username": ROLE,
            "password": password,
            "dbname": DB_NAME,
        },
    )
    _put_secret(
        stack,
        REDIS_SECRET,
        redis_secret_document(stack.redis, db=REDIS_DB),
    )
    s3 = stack.aws.client("s3")
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": stack.aws.region})
    client = lambda_client(stack.aws)
    deploy(
        client,
        db_secret_id=DB_SECRET,
        redis_secret_id=REDIS_SECRET,
        exports_bucket=BUCKET,
        name_prefix=PREFIX,
        **stack_options(stack),
    )
    yield Deployed(stack, admin, client)
    for name in ("data_export", "data_deletion", "audit_logging"):
        client.delete_function(FunctionName=PREFIX + name)
    redis = dataclasses.replace(stack.redis, db=REDIS_DB).client()
    redis.flushdb()
    for key in [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]:
        s3.delete_object(Bucket=BUCKET, Key=key)
    with stack.direct.connect(autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


# -- the functions -------------------------------------------------------------------------------


def test_redeploying_unchanged_functions_changes_nothing(gdpr: Deployed):
    again = deploy(
        gdpr.client,
        db_secret_id=DB_SECRET,
        redis_secret_id=REDIS_SECRET,
        exports_bucket=BUCKET,
        name_prefix=PREFIX,
        **stack_options(gdpr.stack),
    )
    assert [(r.name, r.action) for r in again] == [
        (f"{PREFIX}data_export", "unchanged"),
        (f"{PREFIX}data_deletion", "unchanged"),
        (f"{PREFIX}audit_logging", "unchanged"),
    ]
    config = gdpr.client.get_function_configuration(FunctionName=f"{PREFIX}data_deletion")
    assert (config["MemorySize"], config["Timeout"]) == (256, 300)
    expected = {"DB_SECRET_ID", "DB_SCHEMA", "EXPORTS_BUCKET", "REDIS_SECRET_ID", "DB_SSLMODE"}
    if gdpr.stack.proxy.sslrootcert:
        expected.add("CA_BUNDLE")
    assert set(config["Environment"]["Variables"]) == expected


def test_export_row_counts_match_the_database(gdpr: Deployed):
    user_id = gdpr.busiest_users(1)[0]
    expected = gdpr.rows(user_id)
    result = gdpr.invoke("data_export", {"user_id": user_id})
    assert result.function_error is None, result.payload
    assert result.payload["ok"], result.payload
    with urllib.request.urlopen(result.payload["url"], timeout=10) as response:
        body = response.read()
    lines = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    exported = Counter(line["table"] for line in lines)
    assert {t: exported.get(t, 0) for t in expected} == expected
    assert result.payload["row_counts"] == expected
    assert expected["events"] > 10, "the busiest ci user should have a real amount of activity"
    documents = [line["row"] for line in lines if line["table"] == "documents"]
    assert all(len(d["embedding"]) == 384 and isinstance(d["embedding"][0], float) for d in documents)
    assert gdpr.audit_actions(user_id)[-1] == "gdpr.export"
    assert result.report is not None and result.report.memory_size_mb == 512
    # Personal data at rest: the export asks for SSE-KMS itself, whatever the bucket's default.
    head = gdpr.stack.aws.client("s3").head_object(Bucket=result.payload["bucket"], Key=result.payload["key"])
    assert head["ServerSideEncryption"] == "aws:kms"


def test_an_export_retried_with_its_export_id_keeps_one_object_audited_once(gdpr: Deployed):
    user_id = gdpr.busiest_users(5)[4]
    event = {"user_id": user_id, "export_id": "test-retry-1"}
    first = gdpr.invoke("data_export", event)
    assert first.function_error is None and first.payload["ok"] and not first.payload["replayed"], first.payload
    # The state an invocation killed between its object and its audit entry leaves: the object, no entry.
    s3 = gdpr.stack.aws.client("s3")
    s3.copy_object(
        Bucket=BUCKET,
        Key=f"exports/user-{user_id}/test-retry-2.ndjson.gz",
        CopySource={"Bucket": BUCKET, "Key": first.payload["key"]},
    )

    replayed = gdpr.invoke("data_export", event)
    healed = gdpr.invoke("data_export", {"user_id": user_id, "export_id": "test-retry-2"})

    assert replayed.payload["ok"] and replayed.payload["replayed"], replayed.payload
    assert replayed.payload["key"] == first.payload["key"]
    assert replayed.payload["row_counts"] == first.payload["row_counts"]
    with urllib.request.urlopen(replayed.payload["url"], timeout=10) as response:
        assert len(gzip.decompress(response.read()).splitlines()) == first.payload["rows"]
    assert healed.payload["ok"] and not healed.payload["replayed"], healed.payload
    assert sorted(gdpr.export_keys(user_id)) == [
        f"exports/user-{user_id}/test-retry-1.ndjson.gz",
        f"exports/user-{user_id}/test-retry-2.ndjson.gz",
    ]
    exported = gdpr.audit_actions(user_id, column="details->>'export_id'", action="gdpr.export")
    assert exported == ["test-retry-1", "test-retry-2"]


def test_an_export_without_an_export_id_is_named_after_its_request(gdpr: Deployed):
    user_id = gdpr.busiest_users(6)[5]
    result = gdpr.invoke("data_export", {"user_id": user_id})
    assert result.payload["ok"], result.payload
    assert result.payload["key"] == f"exports/user-{user_id}/{result.payload['export_id']}.ndjson.gz"
    assert re.fullmatch(r"[0-9a-f-]{36}", result.payload["export_id"]), result.payload["export_id"]


def test_deletion_leaves_no_row_key_or_object_and_is_idempotent(gdpr: Deployed):
    user_id, neighbour = gdpr.busiest_users(3)[1:3]
    redis = gdpr.redis()
    redis.set(f"user:{user_id}:session:abc", "1", ex=600)
    redis.set(f"user:{user_id}:profile", "{}", ex=600)
    redis.set(f"user:{neighbour}:profile", "{}", ex=600)
    assert gdpr.invoke("data_export", {"user_id": user_id}).payload["ok"]
    assert gdpr.export_keys(user_id)
    before = gdpr.rows(user_id)
    neighbour_before = gdpr.rows(neighbour)

    result = gdpr.invoke("data_deletion", {"user_id": user_id})

    assert result.function_error is None, result.payload
    assert result.payload["verified"] and result.payload["user_existed"]
    assert result.payload["rows_deleted"] == {t: before[t] for t in ERASED}
    after = gdpr.rows(user_id)
    assert {t: after[t] for t in ERASED} == dict.fromkeys(ERASED, 0)
    # The request record is kept, as the audit trail is.
    assert after["gdpr_requests"] == before["gdpr_requests"]
    assert list(redis.scan_iter(match=f"user:{user_id}:*")) == []
    assert gdpr.export_keys(user_id) == []
    assert redis.exists(f"user:{neighbour}:profile") == 1
    assert gdpr.rows(neighbour) == neighbour_before
    assert gdpr.audit_actions(user_id)[-2:] == ["gdpr.export", "gdpr.deletion"]

    again = gdpr.invoke("data_deletion", {"user_id": user_id})
    assert again.function_error is None and again.payload["ok"] and not again.payload["user_existed"]
    assert sum(again.payload["rows_deleted"].values()) == 0


def test_audit_logging_appends_a_batch(gdpr: Deployed):
    user_id = gdpr.busiest_users(4)[3]
    before = len(gdpr.audit_actions(user_id))
    events = [{"actor": "svc:backend", "action": f"test.event{i}", "subject_user_id": user_id} for i in range(3)]
    result = gdpr.invoke("audit_logging", {"events": events})
    assert result.payload == {"ok": True, "inserted": 3}
    assert gdpr.audit_actions(user_id)[before:] == ["test.event0", "test.event1", "test.event2"]


def _snapshot(gdpr: Deployed) -> tuple[dict[str, int], int, int]:
    with gdpr.admin.connect(autocommit=True) as conn:
        counts = {
            t: conn.execute(sql.SQL("SELECT count(*) FROM app.{}").format(sql.Identifier(t))).fetchone()[0]
            for t in (*ALL_USER_TABLES, "audit_log")
        }
    objects = gdpr.stack.aws.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
    return counts, objects, gdpr.redis().dbsize()


@pytest.mark.parametrize(
    ("function", "payload", "message"),
    [
        ("data_deletion", {"user_id": "1 OR 1=1"}, "user_id must be a positive integer"),
        ("data_deletion", {"user_id": -1}, "between 1 and"),
        ("data_deletion", {}, 'no "user_id"'),
        ("data_export", {"user_id": True}, "positive integer"),
        ("data_export", [1, 2], "must be a JSON object"),
        ("data_export", {"user_id": 1, "export_id": "../user-2/x"}, "export_id must be 1 to 64"),
        ("data_export", {"user_id": 1, "export_id": 7}, "export_id must be 1 to 64"),
        ("audit_logging", {"events": [{"actor": "a", "action": "ok"}, {"actor": "a"}]}, r"events\[1\].action"),
    ],
)
def test_invalid_input_gets_a_clear_error_and_changes_nothing(gdpr: Deployed, function, payload, message):
    gdpr.redis().set("user:1:profile", "{}", ex=600)
    before = _snapshot(gdpr)
    result = gdpr.invoke(function, payload)
    assert result.function_error is None
    assert result.payload["ok"] is False and result.payload["error"]["type"] == "InvalidInput"
    assert re.search(message, result.payload["error"]["message"]), result.payload
    assert _snapshot(gdpr) == before


def test_export_of_an_unknown_user_writes_nothing(gdpr: Deployed):
    before = _snapshot(gdpr)
    result = gdpr.invoke("data_export", {"user_id": 10**12})
    assert result.payload["error"]["type"] == "UserNotFound"
    assert _snapshot(gdpr) == before


# -- the runtime: limits, REPORT lines, warm and cold, throttling ------------------------------------


HANDLERS = {
    "hog": "def handler(event, context):\n"
    "    block = bytearray(event['mb'] * 1024 * 1024)\n"
    "    for i in range(0, len(block), 4096):\n"
    "        block[i] = 1\n"
    "    return len(block)\n",
    "sleep": "import time\n"
    "def handler(event, context):\n"
    "    time.sleep(event['s'])\n"
    "    return context.get_remaining_time_in_millis()\n",
    "burn": "import time\n"
    "def handler(event, context):\n"
    "    started, total = time.process_time(), 0\n"
    "    for i in range(event['n']):\n"
    "        total += i * i\n"
    "    return time.process_time() - started\n",
    "fail": "def handler(event, context):\n    raise ValueError('bad thing ' + str(event['x']))\n",
}


@pytest.fixture(scope="module")
def make_function(stack: StackEndpoints) -> Iterator[Any]:
    client = lambda_client(stack.aws)
    created: list[str] = []

    def create(kind: str, memory_mb: int, timeout_s: int = 30) -> str:
        name = f"{PREFIX}{kind}-{memory_mb}-{timeout_s}"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", HANDLERS[kind])
        if name not in created:
            with contextlib.suppress(client.exceptions.ResourceNotFoundException):
                client.delete_function(FunctionName=name)
            client.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role="arn:aws:iam::000000000000:role/test",
                Handler="app.handler",
                Code={"ZipFile": buffer.getvalue()},
                MemorySize=memory_mb,
                Timeout=timeout_s,
            )
            created.append(name)
        return name

    create.client = client  # type: ignore[attr-defined]
    yield create
    for name in created:
        client.delete_function(FunctionName=name)


def test_exceeding_memory_size_kills_the_invocation_with_lambdas_error(make_function):
    name = make_function("hog", 128)
    result = invoke(make_function.client, name, {"mb": 300})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.OutOfMemory"
    assert "Runtime exited with error: signal: killed" in result.payload["errorMessage"]
    assert result.report.max_memory_used_mb == 128
    assert (result.report.status, result.report.error_type) == ("error", "Runtime.OutOfMemory")
    # The environment is gone: the next invocation starts a new one, and a modest one fits.
    fits = invoke(make_function.client, name, {"mb": 40})
    assert fits.function_error is None and fits.report.cold_start
    assert 40 <= fits.report.max_memory_used_mb < 128


def test_timeout_is_enforced_with_lambdas_message(make_function):
    name = make_function("sleep", 128, timeout_s=1)
    result = invoke(make_function.client, name, {"s": 5})
    assert result.function_error == "Unhandled"
    assert "Task timed out after 1.00 seconds" in result.payload["errorMessage"]
    assert result.report.status == "timeout"
    assert 1000 <= result.report.duration_ms < 1500
    assert result.wall_ms < 4000


def test_report_lines_cold_then_warm_and_in_cloudwatch(make_function, stack: StackEndpoints):
    name = make_function("sleep", 256)
    cold = invoke(make_function.client, name, {"s": 0.05})
    warm = invoke(make_function.client, name, {"s": 0.05})
    assert cold.report.cold_start and not warm.report.cold_start
    for result in (cold, warm):
        report = result.report
        assert report.memory_size_mb == 256
        assert 50 <= report.duration_ms < 1000
        assert report.billed_duration_ms == math.ceil(report.duration_ms + (report.init_duration_ms or 0))
        assert parse_report_line(report.format()) == report
        assert f"START RequestId: {report.request_id} Version: $LATEST" in result.log_tail
    # The remaining time the handler saw counts down from the function's timeout.
    assert 29_000 < warm.payload <= 30_000
    logs = stack.aws.client("logs")
    wanted, seen = {cold.report.request_id, warm.report.request_id}, set()
    deadline = time.monotonic() + 10
    while not wanted <= seen and time.monotonic() < deadline:
        # The runtime ships logs off the invoke path, every half second: the group may not exist yet.
        with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern="REPORT")["events"]
            seen = {parse_report_line(e["message"]).request_id for e in events}
        time.sleep(0.25)
    assert wanted <= seen
    metrics = stack.aws.client("cloudwatch").list_metrics(
        Namespace="AWS/Lambda", Dimensions=[{"Name": "FunctionName", "Value": name}]
    )["Metrics"]
    assert {"Duration", "Errors", "ConcurrentExecutions", "Invocations"} <= {m["MetricName"] for m in metrics}


def test_the_checklists_log_evidence_counts_the_report_lines_that_reached_cloudwatch_logs(
    make_function, stack: StackEndpoints
):
    name = make_function("sleep", 128)
    began = time.time()
    for _ in range(3):
        invoke(make_function.client, name, {"s": 0})
    logs = stack.aws.client("logs")
    found: dict[str, Any] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # The runtime ships logs off the invoke path, every half second.
        found = logs_evidence(logs, began - 1, time.time() + 1, [name, "never-deployed"])["groups"]
        if found[name]["report_lines"] >= 3:
            break
        time.sleep(0.25)
    assert found[name]["exists"] and found[name]["report_lines"] == 3
    assert found["never-deployed"] == {
        "group": "/aws/lambda/never-deployed",
        "exists": False,
        "retention_days": None,
        "report_lines": 0,
    }


def test_a_raised_exception_is_an_unhandled_error_and_keeps_the_environment(make_function):
    name = make_function("fail", 128)
    first = invoke(make_function.client, name, {"x": 1})
    second = invoke(make_function.client, name, {"x": 2})
    assert first.function_error == "Unhandled"
    assert first.payload["errorType"] == "ValueError" and first.payload["errorMessage"] == "bad thing 1"
    assert "[ERROR] ValueError: bad thing 1" in first.log_tail
    assert not second.report.cold_start


def test_cpu_share_follows_memory(make_function, stack: StackEndpoints):
    facts = json.loads(urllib.request.urlopen(f"{stack.aws.lambda_url}/_harness/health", timeout=5).read())
    if not facts["cgroups"]["enforced"]:
        pytest.skip(f"CPU share not enforced on this machine: {facts['cgroups']['detail']}")
    work = {"n": 1_500_000}
    durations = {}
    for memory in (1769, 128):
        name = make_function("burn", memory)
        invoke(make_function.client, name, {"n": 1000})  # cold start out of the way
        # The faster of two runs: other load on the machine only ever slows a run down.
        durations[memory] = min(invoke(make_function.client, name, work).report.duration_ms for _ in range(2))
    ratio = durations[128] / durations[1769]
    print(f"CPU-bound work: {durations[1769]:.0f} ms at 1769 MB, {durations[128]:.0f} ms at 128 MB, ratio {ratio:.1f}")
    # 1769/128 = 13.8; the band allows for a busy machine and CFS period granularity.
    assert 5 <= ratio <= 25


def test_invocations_beyond_the_concurrency_limit_are_throttled(make_function, stack: StackEndpoints):
    facts = json.loads(urllib.request.urlopen(f"{stack.aws.lambda_url}/_harness/health", timeout=5).read())
    limit = facts["concurrency_limit"]
    name = make_function("sleep", 128, timeout_s=10)
    series = invoke_series(make_function.client, name, [{"s": 2}], count=limit + 3, concurrency=limit + 3)
    assert series.throttles >= 1
    assert len(series.reports) <= limit
    assert series.errors == 0
    assert all(i.throttled or i.report is not None for i in series.invocations)
    cloudwatch, names = stack.aws.client("cloudwatch"), set()
    deadline = time.monotonic() + 10
    while "Throttles" not in names and time.monotonic() < deadline:
        time.sleep(0.25)
        metrics = cloudwatch.list_metrics(Namespace="AWS/Lambda", Dimensions=[{"Name": "FunctionName", "Value": name}])
        names = {m["MetricName"] for m in metrics["Metrics"]}
    assert "Throttles" in names


def test_log_result_is_base64_of_the_tail(make_function):
    name = make_function("sleep", 128)
    response = make_function.client.invoke(FunctionName=name, Payload=b'{"s": 0}', LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    assert tail.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId: ")
    assert response["StatusCode"] == 200 and response["ExecutedVersion"] == "$LATEST"


@pytest.fixture
def uncapped_runtime(stack: StackEndpoints, tmp_path) -> Iterator[Any]:
    """A second runtime with cgroups off: what a machine without writable cgroups gets."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = LambdaRuntimeService(
        state_dir=tmp_path / "lambda",
        log_path=tmp_path / "lambda.log",
        port=port,
        aws=stack.aws,
        concurrency=2,
        cgroups="off",
        cgroup_prefix="dbunit-harness-test-uncapped",
        run_as="dbunit",
        pids=PidFiles(tmp_path / "run"),
        timeout_s=30,
    )
    service.start()
    try:
        yield lambda_client(dataclasses.replace(stack.aws, lambda_url=service.url))
    finally:
        service.stop()


def test_without_cgroups_memory_is_still_enforced_and_cpu_time_is_reported(uncapped_runtime):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLERS["hog"])
    uncapped_runtime.create_function(
        FunctionName="hog",
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/test",
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
        MemorySize=128,
        Timeout=30,
    )
    killed = invoke(uncapped_runtime, "hog", {"mb": 400})
    assert killed.payload["errorType"] == "Runtime.OutOfMemory"
    assert killed.report.max_memory_used_mb == 128
    fits = invoke(uncapped_runtime, "hog", {"mb": 30})
    assert fits.function_error is None
    assert 30 <= fits.report.max_memory_used_mb < 128
    assert fits.cpu_ms is not None and fits.cpu_ms > 0


# -- secret rotation under load (last: it changes the test role's password) -------------------------------

ROTATION_CLIENTS = 4
ROTATION_DEADLINE_S = 30.0


@dataclass
class _RotationClient:
    """A proxy client as an application writes one: credentials from the secret, cached; a refused login
    re-reads the secret and retries (bounded), a request that still fails is counted."""

    stack: StackEndpoints
    old_password: str
    requests: int = 0
    failures: int = 0
    retries: int = 0
    first_new_at: float | None = None
    errors: list[str] = dataclasses.field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        sm = self.stack.aws.client("secretsmanager")
        cached: dict[str, Any] | None = None
        deadline = time.monotonic() + ROTATION_DEADLINE_S + 10
        while not stop.is_set() and time.monotonic() < deadline:
            self.requests += 1
            for attempt in range(4):
                if cached is None:
                    cached = json.loads(sm.get_secret_value(SecretId=DB_SECRET)["SecretString"])
                login = dataclasses.replace(
                    self.stack.proxy, user=cached["username"], password=Secret(cached["password"]), dbname=DB_NAME
                )
                try:
                    with login.connect(autocommit=True, prepare_threshold=None, connect_timeout=10) as conn:
                        conn.execute("SELECT 1").fetchone()
                except psycopg.OperationalError as exc:
                    if re.search(r"(password|SASL) authentication failed", str(exc)) and attempt < 3:
                        cached, self.retries = None, self.retries + 1
                        time.sleep(0.2 * (attempt + 1))
                        continue
                    self.failures += 1
                    self.errors.append(str(exc).splitlines()[0])
                    break
                if cached["password"] != self.old_password and self.first_new_at is None:
                    self.first_new_at = time.monotonic()
                break


def test_rotation_under_load_fails_no_request_and_moves_every_client_to_the_new_password(gdpr: Deployed):
    sm = gdpr.stack.aws.client("secretsmanager")
    old = json.loads(sm.get_secret_value(SecretId=DB_SECRET)["SecretString"])
    clients = [_RotationClient(gdpr.stack, old["password"]) for _ in range(ROTATION_CLIENTS)]
    lambda_outcomes: list[str] = []
    stop = threading.Event()

    def invoke_lambda() -> None:
        while not stop.is_set() and len(lambda_outcomes) < 500:
            result = gdpr.invoke("audit_logging", {"events": [{"actor": "rotation-test", "action": "rotation.probe"}]})
            ok = result.function_error is None and result.payload.get("ok")
            lambda_outcomes.append("ok" if ok else f"{result.function_error}: {str(result.payload)[:200]}")

    threads = [threading.Thread(target=c.run, args=(stop,)) for c in clients]
    threads.append(threading.Thread(target=invoke_lambda))
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)  # load under way before the rotation starts
        rotation = rotate(sm, DB_SECRET, gdpr.admin, gdpr.stack.proxy)
        deadline = time.monotonic() + ROTATION_DEADLINE_S
        while any(c.first_new_at is None for c in clients) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # a little load after the switch too
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    switched = [c.first_new_at - rotation.finished_at for c in clients if c.first_new_at is not None]
    print(
        f"rotation steps (ms): {', '.join(f'{k} {v:.0f}' for k, v in rotation.step_ms.items())}; "
        f"proxy clients: {sum(c.requests for c in clients)} requests, {sum(c.failures for c in clients)} failed, "
        f"{sum(c.retries for c in clients)} logins retried after re-reading the secret; all on the new password "
        f"{max(switched, default=float('nan')) * 1000:.0f} ms after finishSecret; Lambda: {len(lambda_outcomes)} "
        f"invocations, {sum(o != 'ok' for o in lambda_outcomes)} failed"
    )
    assert sum(c.failures for c in clients) == 0, [e for c in clients for e in c.errors][:5]
    assert [o for o in lambda_outcomes if o != "ok"] == []
    assert len(switched) == ROTATION_CLIENTS, "a client never used the new password"
    assert all(c.requests > 1 for c in clients) and lambda_outcomes
    new = json.loads(sm.get_secret_value(SecretId=DB_SECRET)["SecretString"])
    previous = json.loads(sm.get_secret_value(SecretId=DB_SECRET, VersionStage="AWSPREVIOUS")["SecretString"])
    assert new["password"] != old["password"] and previous["password"] == old["password"]
    stale = dataclasses.replace(gdpr.stack.proxy, user=ROLE, password=Secret(old["password"]), dbname=DB_NAME)
    with pytest.raises(psycopg.OperationalError, match=r"(password|SASL) authentication failed"):
        stale.connect(connect_timeout=10)
