"""Drill: a GDPR export killed mid-way, then retried; a deletion retried.

No hook in the function: the drill gives a throw-away clone of a seeded user a large amount of event data
(EXTRA_EVENTS rows with PAYLOAD_KB of JSON each), then lowers data_export's configuration for one invocation
at a time, as an operator's mistake or a grown user would: a Timeout of 1 s (killed while its first read waits
on the users table, which the drill holds locked for that invocation: an uncapped CPU would otherwise read and
compress the data inside the second), then a MemorySize of 128 MB (a cursor batch of these rows does not fit:
the runtime's memory cgroup or sampler kills it). The configuration is restored afterwards, also on failure,
and the export retried. Checked: the killed invocations failed as Lambda reports them (Sandbox.Timedout,
Runtime.OutOfMemory), left no object and no incomplete multipart upload under the user's prefix, and the retry
wrote exactly one object, complete (every line there, the counts equal to the database's) and audited once.
Then the kill window between the object and its audit entry: with audit_log locked against inserts, an export
with an export id completes its object and waits on its audit entry, and there its worker is killed (SIGKILL,
as a host failure would); the retry with the same export id must leave exactly one object audited once, and a
second retry must answer it again without exporting. Then data_deletion runs twice: the second run deletes
nothing more, both are audited, nothing of the user is left.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from psycopg import sql

from harness.app.clones import clone_user, discard_clone
from harness.app.gdpr_deploy import deploy_to_stack
from harness.app.gdpr_invoke import Invocation, invoke, lambda_client
from harness.backends.base import Backend
from harness.drills.result import DrillResult
from harness.endpoints import PostgresEndpoint, StackEndpoints
from harness.services.aws import aborts_incomplete_uploads
from harness.services.lambda_server import NAME as LAMBDA_RUNTIME
from harness.services.process import PidFiles

EXTRA_EVENTS = 200
PAYLOAD_KB = 512
DRILL_TIMEOUT_S = 1
DRILL_MEMORY_MB = 128
EXPORT = "data_export"
DELETION = "data_deletion"
# Tables of a user's data the export writes (gdpr_common.schema.USER_TABLES), as counted here.
COUNTED = ("users", "profiles", "consents", "events")
KILL_WINDOW_EXPORT_ID = "drill-kill-window"
# How long the export may take to reach its audit entry with the table locked, and the retry to finish.
KILL_WINDOW_DEADLINE_S = 120
WORKER_MODULE = "harness.lambda_runtime.worker"


def _prefix(user_id: int) -> str:
    return f"exports/user-{int(user_id)}/"


def _make_clone(admin: PostgresEndpoint) -> int:
    with admin.connect(autocommit=False, request_timeout_s=300) as conn:
        source = conn.execute("SELECT user_id FROM users ORDER BY user_id LIMIT 1").fetchone()
        if source is None:
            raise RuntimeError("the Lambda drill exports a copy of a seeded user: seed the unit first (`harness seed`)")
        clone = clone_user(conn, int(source[0]), tag="drill-lambda")
        # Large, highly compressible payloads: cheap on disk (TOAST compresses them), large in the function.
        conn.execute(
            "INSERT INTO events (user_id, occurred_at, event_type, payload) "
            "SELECT %s, now() - g * interval '1 minute', 'drill.bulk', "
            "jsonb_build_object('blob', repeat(md5(g::text), %s)) FROM generate_series(1, %s) g",
            (clone, PAYLOAD_KB * 1024 // 32, EXTRA_EVENTS),
        )
        conn.commit()
    return clone


def _db_counts(admin: PostgresEndpoint, user_id: int) -> dict[str, int]:
    with admin.connect(autocommit=True, request_timeout_s=60) as conn:
        return {
            t: int(conn.execute(f"SELECT count(*) FROM {t} WHERE user_id = %s", (user_id,)).fetchone()[0])
            for t in COUNTED
        }


def _audit_entries(admin: PostgresEndpoint, user_id: int, action: str, export_id: str | None = None) -> int:
    """The user's audit entries of `action`; only those of one export id when given."""
    with admin.connect(autocommit=True, request_timeout_s=60) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit_log WHERE subject_user_id = %s AND action = %s "
            "AND (%s::text IS NULL OR details->>'export_id' = %s)",
            (user_id, action, export_id, export_id),
        ).fetchone()
    return int(row[0])


def _objects(s3: Any, bucket: str, user_id: int, export_id: str = "") -> tuple[list[str], int]:
    """Objects and incomplete uploads under the user's export prefix; only one export id's when given."""
    prefix = _prefix(user_id) + (f"{export_id}." if export_id else "")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return [o["Key"] for o in listed], len(uploads)


def _worker_pids(state_dir: Path, function: str) -> list[int]:
    """PIDs of `function`'s workers under this stack's Lambda runtime (an environment is one worker process);
    a second stack's runtime on the same machine is not touched."""
    record = PidFiles(Path(state_dir) / "run").read(LAMBDA_RUNTIME)
    runtime = record.process() if record is not None else None
    if runtime is None:
        return []
    pids = []
    for proc in runtime.children(recursive=True):
        try:
            if WORKER_MODULE in proc.cmdline() and proc.environ().get("AWS_LAMBDA_FUNCTION_NAME") == function:
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


@contextlib.contextmanager
def _reads_held(stack: StackEndpoints, schema: str, seconds: float) -> Any:
    """The users table locked against reads while the block runs: an export started in it waits at its first
    read however fast the machine is, so only its Timeout can end it."""
    with stack.direct.connect(autocommit=False, request_timeout_s=seconds + 30) as lock:
        lock.execute(sql.SQL("LOCK TABLE {}.users IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema)))
        try:
            yield
        finally:
            lock.rollback()


def _blocked_on_audit(conn: Any) -> bool:
    """The export's audit insert is waiting on the drill's lock, so its object is complete."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
        ("%INSERT INTO%audit_log%",),
    ).fetchone()
    return bool(row and row[0])


def _kill_window(
    result: DrillResult,
    client: Any,
    s3: Any,
    bucket: str,
    stack: StackEndpoints,
    admin: PostgresEndpoint,
    clone: int,
    state_dir: Path,
    report: Callable[[str], None],
) -> None:
    """Kill an export after its object completed and before its audit entry; retry with the same export id."""
    f = result.figures
    if stack.backend != "embedded":
        result.notes.append(
            f"NOT EXERCISED on the {stack.backend} backend: the kill window needs the local Lambda runtime's worker "
            "processes, to kill one between its object and its audit entry"
        )
        return
    event = {"user_id": clone, "export_id": KILL_WINDOW_EXPORT_ID}
    schema = _schema(admin)
    outcome: dict[str, Invocation] = {}
    report("lambda drill: export killed between its object and its audit entry")
    with stack.direct.connect(autocommit=False, request_timeout_s=KILL_WINDOW_DEADLINE_S + 30) as lock:
        # SHARE mode lets the export read audit_log (its idempotency check) and blocks only its insert.
        lock.execute(sql.SQL("LOCK TABLE {}.audit_log IN SHARE MODE").format(sql.Identifier(schema)))
        invoker = threading.Thread(
            target=lambda: outcome.update(first=invoke(client, EXPORT, event)), name="drill-export", daemon=True
        )
        invoker.start()
        deadline = time.monotonic() + KILL_WINDOW_DEADLINE_S
        with stack.direct.connect(autocommit=True, request_timeout_s=30) as watch:
            while not _blocked_on_audit(watch) and invoker.is_alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            waiting = _blocked_on_audit(watch)
        keys, uploads = _objects(s3, bucket, clone, KILL_WINDOW_EXPORT_ID)
        killed = _worker_pids(state_dir, EXPORT) if waiting else []
        for pid in killed:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        invoker.join(timeout=60)
        lock.rollback()
    first = outcome.get("first")
    f["kill_window_objects_before_retry"] = len(keys)
    f["kill_window_error"] = _error_type(first) if first is not None else "no answer"
    result.check(
        "kill window: the export was killed with its object complete and its audit entry pending",
        waiting
        and len(keys) == 1
        and uploads == 0
        and bool(killed)
        and first is not None
        and bool(first.function_error),
        f"audit insert waiting on the lock: {waiting}; {len(keys)} objects, {uploads} incomplete uploads; "
        f"{len(killed)} {EXPORT} workers killed; the invocation: {f['kill_window_error']}",
    )
    # The killed worker's insert may still commit once the lock is gone (the server finishes a statement whose
    # client has left): a retry must then answer the audited export, else audit its own; never a second entry.
    f["kill_window_orphan_audited"] = _audit_entries(admin, clone, "gdpr.export", KILL_WINDOW_EXPORT_ID)
    retries = [invoke(client, EXPORT, event) for _ in range(2)]
    keys, uploads = _objects(s3, bucket, clone, KILL_WINDOW_EXPORT_ID)
    audited = _audit_entries(admin, clone, "gdpr.export", KILL_WINDOW_EXPORT_ID)
    payloads = [r.payload or {} for r in retries]
    f["kill_window_retries"] = [
        {"ok": p.get("ok"), "replayed": p.get("replayed"), "error": _error_type(r)}
        for r, p in zip(retries, payloads, strict=True)
    ]
    f["kill_window_objects"], f["kill_window_audit_entries"] = len(keys), audited
    f["partial_exports"] = f.get("partial_exports", 0) + max(0, len(keys) - 1) + uploads
    result.check(
        "kill window: retries with the same export id leave one object, audited once",
        all(p.get("ok") for p in payloads) and len(keys) == 1 and uploads == 0 and audited == 1,
        f"retries {f['kill_window_retries']}; {len(keys)} objects, {uploads} incomplete uploads, {audited} audit "
        f"entries for export id {KILL_WINDOW_EXPORT_ID} (the killed insert committed later: "
        f"{bool(f['kill_window_orphan_audited'])})",
    )
    result.check(
        "kill window: the second retry answers the audited export without exporting again",
        bool(payloads[-1].get("replayed")),
        f"second retry: replayed={payloads[-1].get('replayed')}",
    )


def _schema(admin: PostgresEndpoint) -> str:
    """The schema of the unit's audit_log, which the application role's search_path finds."""
    with admin.connect(autocommit=True, request_timeout_s=30) as conn:
        row = conn.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass('audit_log')"
        ).fetchone()
    if row is None:
        raise RuntimeError("the unit has no audit_log table: seed it first (`harness seed`)")
    return str(row[0])


def _error_type(inv: Invocation) -> str:
    if inv.function_error is None:
        return "none"
    return str((inv.payload or {}).get("errorType", "unknown")) if isinstance(inv.payload, dict) else "unknown"


def _killed(
    client: Any, original: dict[str, Any], user_id: int, change: dict[str, int], report: Callable[[str], None]
) -> tuple[Invocation, float]:
    client.update_function_configuration(FunctionName=EXPORT, **change)
    try:
        report(f"lambda drill: export with {change}")
        began = time.monotonic()
        inv = invoke(client, EXPORT, {"user_id": user_id})
        return inv, time.monotonic() - began
    finally:
        client.update_function_configuration(
            FunctionName=EXPORT, MemorySize=original["MemorySize"], Timeout=original["Timeout"]
        )


def not_emulated_reason(backend: Backend, stack: StackEndpoints) -> str:
    """Why this drill cannot run on the stack ("" when it can): it needs the harness's own Lambda runtime,
    which enforces Timeout and MemorySize and whose workers it can kill."""
    if backend.can_restart("lambda") and stack.aws.lambda_url:
        return ""
    return (
        f"the {backend.name} backend runs no Lambda runtime of the harness's (its AWS emulator answers the Lambda "
        "API itself, without enforcing Timeout or MemorySize and without workers to kill)"
    )


def run(
    stack: StackEndpoints, app_direct: PostgresEndpoint, state_dir: Any, report: Callable[[str], None] = print
) -> DrillResult:
    """`app_direct`: the application role straight to PostgreSQL (its search_path finds the unit's tables)."""
    result = DrillResult("lambda")
    f = result.figures
    client = lambda_client(stack.aws)
    names = {fn["FunctionName"] for fn in client.list_functions().get("Functions", [])}
    if not {EXPORT, DELETION} <= names:
        report("lambda drill: deploying the GDPR functions")
        deploy_to_stack(stack, state_dir, names=[EXPORT, DELETION])
    original = client.get_function_configuration(FunctionName=EXPORT)
    f["configured"] = f"{original['MemorySize']} MB, {original['Timeout']} s"
    s3 = stack.aws.client("s3")
    bucket = stack.resources.exports_bucket
    admin = app_direct
    clone = _make_clone(admin)
    deleted = False
    try:
        f["user_rows"] = sum(_db_counts(admin, clone).values())
        f["data_mb"] = round(EXTRA_EVENTS * PAYLOAD_KB / 1024, 1)
        schema = _schema(admin)
        for kind, change, expected in (
            ("timeout", {"Timeout": DRILL_TIMEOUT_S}, "Sandbox.Timedout"),
            ("oom", {"MemorySize": DRILL_MEMORY_MB}, "Runtime.OutOfMemory"),
        ):
            held = _reads_held(stack, schema, KILL_WINDOW_DEADLINE_S) if kind == "timeout" else contextlib.nullcontext()
            with held:
                inv, seconds = _killed(client, original, clone, change, report)
            keys, uploads = _objects(s3, bucket, clone)
            f["partial_exports"] = f.get("partial_exports", 0) + len(keys) + uploads
            f[f"{kind}_error"] = _error_type(inv)
            f[f"{kind}_killed_after_s"] = round(seconds, 2)
            f[f"{kind}_max_memory_mb"] = inv.report.max_memory_used_mb if inv.report else None
            result.check(
                f"{kind}: the export was killed as Lambda reports it",
                f[f"{kind}_error"] == expected,
                f"{change} -> {f[f'{kind}_error']} after {seconds:.2f} s (expected {expected})",
            )
            result.check(
                f"{kind}: no object and no incomplete upload left",
                keys == [] and uploads == 0,
                f"{len(keys)} objects, {uploads} incomplete multipart uploads under {_prefix(clone)}",
            )
        restored = client.get_function_configuration(FunctionName=EXPORT)
        result.check(
            "the function's configuration is restored",
            (restored["MemorySize"], restored["Timeout"]) == (original["MemorySize"], original["Timeout"]),
            f"{restored['MemorySize']} MB, {restored['Timeout']} s",
        )
        report("lambda drill: retry at the function's own configuration")
        retry = invoke(client, EXPORT, {"user_id": clone})
        keys, uploads = _objects(s3, bucket, clone)
        f["retry_ok"] = retry.function_error is None and bool((retry.payload or {}).get("ok"))
        f["retry_duration_ms"] = retry.report.duration_ms if retry.report else None
        f["export_objects"] = len(keys)
        f["partial_exports"] += max(0, len(keys) - 1) + uploads
        lines = 0
        if len(keys) == 1:
            body = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
            tables: dict[str, int] = {}
            for line in gzip.decompress(body).splitlines():
                table = json.loads(line)["table"]
                tables[table] = tables.get(table, 0) + 1
                lines += 1
            db = _db_counts(admin, clone)
            complete = all(tables.get(t, 0) == n for t, n in db.items()) and lines == (retry.payload or {}).get("rows")
            f["export_lines"] = lines
        else:
            complete = False
        audited = _audit_entries(admin, clone, "gdpr.export")
        result.check("the retry succeeds", f["retry_ok"], f"{retry.function_error or 'ok'}")
        result.check(
            "exactly one complete export object, audited once",
            len(keys) == 1 and uploads == 0 and complete and audited == 1,
            f"{len(keys)} objects ({lines} lines, the function's row count {(retry.payload or {}).get('rows')}; "
            f"{', '.join(COUNTED)} as in the database), {uploads} incomplete uploads, {audited} audit entries",
        )
        _kill_window(result, client, s3, bucket, stack, admin, clone, Path(state_dir), report)
        days = aborts_incomplete_uploads(s3, bucket)
        f["abort_incomplete_uploads_after_days"] = days
        result.check(
            "incomplete multipart uploads expire by the bucket's lifecycle",
            days is not None,
            f"AbortIncompleteMultipartUpload after {days} days" if days else "no AbortIncompleteMultipartUpload rule",
        )
        report("lambda drill: deletion, twice")
        first = invoke(client, DELETION, {"user_id": clone})
        second = invoke(client, DELETION, {"user_id": clone})
        deleted = first.function_error is None
        p1, p2 = first.payload or {}, second.payload or {}
        f["deletion_first"] = {k: p1.get(k) for k in ("ok", "rows_deleted", "export_objects_deleted")}
        f["deletion_second"] = {k: p2.get(k) for k in ("ok", "rows_deleted", "export_objects_deleted")}
        left = _db_counts(admin, clone)
        keys, uploads = _objects(s3, bucket, clone)
        second_rows = sum((p2.get("rows_deleted") or {}).values()) if isinstance(p2.get("rows_deleted"), dict) else None
        audited_deletions = _audit_entries(admin, clone, "gdpr.deletion")
        result.check(
            "a retried deletion is idempotent",
            bool(p1.get("ok")) and bool(p2.get("ok")) and second_rows == 0 and not any(left.values()) and not keys,
            f"first deleted {p1.get('rows_deleted')}, second {p2.get('rows_deleted')}; left: {left}, {len(keys)} "
            "objects",
        )
        result.check(
            "each deletion is in the audit log", audited_deletions == 2, f"{audited_deletions} gdpr.deletion entries"
        )
    finally:
        if not deleted:
            with admin.connect(autocommit=False, request_timeout_s=120) as conn:
                discard_clone(conn, clone)
                conn.commit()
            for key in _objects(s3, bucket, clone)[0]:
                s3.delete_object(Bucket=bucket, Key=key)
    result.notes.append(
        "NOT EMULATED: the emulator stores the exports bucket's AbortIncompleteMultipartUpload rule but never "
        "applies it; this drill's export compresses to less than one part, so a kill mid-part is not exercised"
    )
    result.notes.append(
        "killed by configuration (Timeout, MemorySize lowered for one invocation, then restored) and by SIGKILL "
        "of its worker in the kill window, not by a hook in the function; the memory limit is the runtime's "
        "cgroup where the machine has one, else its sampler"
    )
    return result
