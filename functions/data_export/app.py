"""data_export: every row of one user's data, as gzipped NDJSON in the exports bucket, behind a presigned URL.

Event: {"user_id": 42, "export_id": "req-7"} (export_id optional). Result: {"ok": true, "export_id",
"bucket", "key", "url", "expires_in", "row_counts", "rows", "bytes", "replayed"}, or {"ok": false, "error":
{"type", "message"}} for input that cannot be processed (nothing is written then). Each line of the object
is {"table": <name>, "row": <the row as JSON>}.

Retries are idempotent per export id (the caller's, else the invocation's request id, which Lambda keeps
across its own retries): the object is named after it, so a retry replaces it instead of adding a second,
and its audit entry is written once. An export already complete and audited is answered again without
being redone ("replayed": true). An invocation killed after its object completed but before its audit
entry leaves that object; the retry replaces and audits it.

Memory stays bounded whatever the user's size: rows are read through a server-side cursor in one
REPEATABLE READ snapshot, compressed as they arrive, and uploaded in parts of PART_BYTES (S3 multipart;
a single PUT when the whole export fits in one part). The audit entry is written once the object is
complete; if it cannot be, the object is removed again and the invocation fails, so an export never
exists unaudited.
"""

from __future__ import annotations

import os
import time
import zlib
from datetime import UTC, datetime
from typing import Any

from gdpr_common.logs import log
from gdpr_common.resources import client, db, prepare, schema, setting
from gdpr_common.schema import USER_TABLES, UserTable, export_prefix
from gdpr_common.validation import InvalidInput, error_result, export_request
from psycopg import sql
from psycopg.types.json import Jsonb

prepare("secretsmanager", "s3")

# S3's minimum part size is 5 MiB; 8 MiB keeps a 512 MB function far from its limit.
PART_BYTES = 8 * 1024 * 1024
CURSOR_ROWS = 1000
ACTION = "gdpr.export"
# Exports are personal data: SSE-KMS asked for explicitly, as the bucket's policy requires, with the unit's
# key when deployed with one (EXPORTS_KMS_KEY_ID), else the bucket's default key.
_KMS_KEY_ID = os.environ.get("EXPORTS_KMS_KEY_ID", "")
ENCRYPTION = {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": _KMS_KEY_ID} if _KMS_KEY_ID else {})}


class _MultipartWriter:
    """Collects compressed bytes and ships them to S3 part by part."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= PART_BYTES:
            self._upload_part()

    def _upload_part(self) -> None:
        if self.upload_id is None:
            self.upload_id = self.s3.create_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
                **ENCRYPTION,
            )["UploadId"]
        number = len(self.parts) + 1
        response = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=bytes(self.buffer)
        )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self.bytes += len(self.buffer)
        self.buffer.clear()

    def close(self) -> None:
        if self.upload_id is None:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=bytes(self.buffer),
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
                **ENCRYPTION,
            )
            self.bytes += len(self.buffer)
            self.buffer.clear()
            return
        if self.buffer:
            self._upload_part()
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        if self.upload_id is not None:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)


def _row_query(table: UserTable) -> sql.Composed:
    # to_jsonb renders every column server-side; the row arrives as JSON text, ready to write.
    row = sql.SQL("to_jsonb(t)")
    for column in table.vector_columns:
        row = sql.SQL("{} || jsonb_build_object({}, t.{}::real[])").format(
            row, sql.Literal(column), sql.Identifier(column)
        )
    return sql.SQL("SELECT ({})::text FROM {} t WHERE t.{} = %s").format(
        row, sql.Identifier(schema(), table.name), sql.Identifier(table.user_column)
    )


def _audit_table() -> sql.Identifier:
    return sql.Identifier(schema(), "audit_log")


def _audited(conn: Any, user_id: int, export_id: str) -> dict[str, Any] | None:
    """The audit details of this export id's completed export, if there is one."""
    row = conn.execute(
        sql.SQL(
            "SELECT details FROM {} WHERE subject_user_id = %s AND action = %s AND details->>'export_id' = %s LIMIT 1"
        ).format(_audit_table()),
        (user_id, ACTION, export_id),
    ).fetchone()
    return None if row is None else dict(row[0])


def _audit_once(conn: Any, context: Any, user_id: int, details: dict[str, Any]) -> None:
    """Append the export's audit entry unless its export id has one: two retries running at once take turns on
    a transaction-scoped advisory lock (transaction pooling keeps a transaction on one server connection)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{ACTION}:{details['export_id']}",))
        conn.execute(
            sql.SQL(
                "INSERT INTO {table} (actor, action, subject_user_id, details) SELECT %s, %s, %s, %s "
                "WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE subject_user_id = %s AND action = %s "
                "AND details->>'export_id' = %s)"
            ).format(table=_audit_table()),
            (
                f"lambda:{getattr(context, 'function_name', 'data_export')}",
                ACTION,
                user_id,
                Jsonb(details),
                user_id,
                ACTION,
                details["export_id"],
            ),
        )


def _object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def _answer(details: dict[str, Any], user_id: int, url: str, ttl: int, replayed: bool) -> dict[str, Any]:
    counts = dict(details["row_counts"])
    return {
        "ok": True,
        "user_id": user_id,
        "export_id": details["export_id"],
        "bucket": details["bucket"],
        "key": details["key"],
        "url": url,
        "expires_in": ttl,
        "row_counts": counts,
        "rows": sum(counts.values()),
        "bytes": details["bytes"],
        "replayed": replayed,
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        user_id, export_id = export_request(event, getattr(context, "aws_request_id", "local"))
    except InvalidInput as exc:
        log("WARNING", "rejected export request", context, reason=str(exc))
        return error_result(exc)
    bucket = setting("EXPORTS_BUCKET")
    ttl = int(setting("EXPORT_URL_TTL_S", "3600"))
    key = f"{export_prefix(user_id)}{export_id}.ndjson.gz"
    s3 = client("s3")
    conn = db()
    done = _audited(conn, user_id, export_id)
    if done is not None and done.get("key") == key and _object_exists(s3, bucket, key):
        url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl)
        log("INFO", "export already written: answered again", context, user_id=user_id, key=key)
        return _answer(done, user_id, url, ttl, replayed=True)
    writer = _MultipartWriter(s3, bucket, key)
    counts: dict[str, int] = {}
    try:
        with conn.transaction():
            # One snapshot for every table: the export is consistent even while the user is active.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            users = sql.Identifier(schema(), "users")
            found = conn.execute(sql.SQL("SELECT 1 FROM {} WHERE user_id = %s").format(users), (user_id,)).fetchone()
            if found is None:
                log("INFO", "export requested for an unknown user", context, user_id=user_id)
                return error_result(InvalidInput(f"user {user_id} does not exist"), "UserNotFound")
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip framing
            for table in USER_TABLES:
                prefix = f'{{"table":"{table.name}","row":'.encode()
                count = 0
                with conn.cursor(name=f"export_{table.name}") as cursor:
                    cursor.itersize = CURSOR_ROWS
                    cursor.execute(_row_query(table), (user_id,))
                    for (row,) in cursor:
                        writer.write(compressor.compress(prefix + row.encode() + b"}\n"))
                        count += 1
                counts[table.name] = count
            writer.write(compressor.flush())
        writer.close()
    except BaseException:
        writer.abort()
        raise
    details = {
        "export_id": export_id,
        "bucket": bucket,
        "key": key,
        "row_counts": counts,
        "bytes": writer.bytes,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        _audit_once(conn, context, user_id, details)
    except BaseException:
        # Unaudited exports must not exist; the retry writes the object again under the same name.
        s3.delete_object(Bucket=bucket, Key=key)
        raise
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    log(
        "INFO",
        "export written",
        context,
        user_id=user_id,
        key=key,
        rows=sum(counts.values()),
        bytes=writer.bytes,
        parts=max(1, len(writer.parts)),
        elapsed_ms=elapsed_ms,
    )
    return _answer(details, user_id, url, ttl, replayed=False)
