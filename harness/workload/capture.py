"""`harness workload capture`: a deployment's query mix from pg_stat_statements, read-only.

Takes the top statements by total execution time and the top by calls (the union: the expensive ones and
the frequent ones), with their calls and mean/total times, into a workload file. Nothing is written to the
deployment: the session is READ ONLY with a statement timeout, and only the view is read. Transaction
control (BEGIN, COMMIT...) and the harness's own reads of the view are left out. On RDS,
pg_stat_statements is in the default parameter group's shared_preload_libraries; `CREATE EXTENSION
pg_stat_statements` must have been run once in the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pglast
import psycopg
from pglast import ast

from harness.endpoints import PostgresEndpoint
from harness.workload.file import Statement, Workload

_CAPTURE_SQL = """
WITH s AS (
    SELECT queryid, query, calls, total_exec_time, mean_exec_time
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND toplevel AND calls >= %(min_calls)s
      AND (%(user)s::text IS NULL OR userid = (SELECT oid FROM pg_roles WHERE rolname = %(user)s::text))
      AND query NOT ILIKE '%%pg_stat_statements%%'
)
SELECT queryid, query, calls, total_exec_time, mean_exec_time FROM (
    (SELECT * FROM s ORDER BY total_exec_time DESC LIMIT %(top)s)
    UNION
    (SELECT * FROM s ORDER BY calls DESC LIMIT %(top)s)
) u ORDER BY total_exec_time DESC
"""


class CaptureError(RuntimeError):
    """pg_stat_statements cannot be read; the message says what to enable."""


def _is_transaction_control(query: str) -> bool:
    try:
        parsed = pglast.parse_sql(query)
    except pglast.parser.ParseError:
        return False
    return all(isinstance(raw.stmt, ast.TransactionStmt) for raw in parsed)


def capture(endpoint: PostgresEndpoint, *, top: int = 20, min_calls: int = 1, user: str | None = None) -> Workload:
    where = f"{endpoint.host}:{endpoint.port}/{endpoint.dbname}"
    try:
        with endpoint.connect(autocommit=True, connect_timeout=10) as conn:
            conn.read_only = True
            conn.execute("SET statement_timeout = '30s'")
            installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
            if not installed:
                raise CaptureError(
                    f"{where} has no pg_stat_statements extension in this database: run "
                    "`CREATE EXTENSION pg_stat_statements` there once (it must also be in shared_preload_libraries)"
                )
            rows = conn.execute(_CAPTURE_SQL, {"top": top, "min_calls": min_calls, "user": user}).fetchall()
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        raise CaptureError(f"could not read pg_stat_statements at {where}: {exc}") from exc
    statements: list[Statement] = []
    for queryid, query, calls, total, mean in rows:
        if _is_transaction_control(query):
            continue
        statements.append(
            Statement(
                f"q{queryid & 0xFFFFFFFFFFFF:x}" if queryid is not None else f"s{len(statements) + 1}",
                " ".join(query.split()),
                int(calls),
                round(float(mean), 4),
                round(float(total), 3),
            )
        )
    source: dict[str, Any] = {
        "kind": "pg_stat_statements",
        "from": where,
        "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "server_version": version[0] if version else None,
        "top": top,
        "user": user,
    }
    return Workload(statements, source)
