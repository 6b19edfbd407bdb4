"""PgBouncer's admin console, for what a scenario needs from the RDS Proxy stand-in: pool figures and
returning its server connections to PostgreSQL between scenarios.

RDS Proxy has no such console; against an external deployment these calls say so instead.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from harness.endpoints import StackEndpoints

ADMIN_DATABASE = "pgbouncer"


class ProxyAdminUnavailable(RuntimeError):
    pass


def _console(stack: StackEndpoints) -> Any:
    if stack.backend == "external":
        raise ProxyAdminUnavailable("an external deployment's RDS Proxy has no PgBouncer admin console")
    admin = dataclasses.replace(stack.proxy, dbname=ADMIN_DATABASE)
    # The console speaks only the simple query protocol: no prepared statements.
    return admin.connect(autocommit=True, prepare_threshold=None)


def _show(stack: StackEndpoints, what: str) -> list[dict[str, Any]]:
    with _console(stack) as conn:
        cursor = conn.execute(f"SHOW {what}")
        columns = [column.name for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def pools(stack: StackEndpoints) -> list[dict[str, Any]]:
    return _show(stack, "POOLS")


def stats(stack: StackEndpoints) -> list[dict[str, Any]]:
    """SHOW STATS: per database, totals and averages over the last stats_period (avg_query_time in µs)."""
    return _show(stack, "STATS")


def clients(stack: StackEndpoints) -> list[dict[str, Any]]:
    """SHOW CLIENTS: one row per client connection, with its `tls` (protocol and cipher, empty if plain)."""
    return _show(stack, "CLIENTS")


def proxy_version(stack: StackEndpoints) -> str:
    """The version PgBouncer reports (SHOW VERSION), without its name."""
    rows = _show(stack, "VERSION")
    return str(rows[0]["version"]).removeprefix("PgBouncer ").strip() if rows else ""


def server_connections(stack: StackEndpoints) -> int:
    """Server connections the proxy holds open to PostgreSQL, in use or idle."""
    return sum(int(p["sv_active"]) + int(p["sv_idle"]) + int(p["sv_used"]) for p in pools(stack))


def release_server_connections(stack: StackEndpoints, timeout_s: float = 30.0) -> None:
    """Close the proxy's server connections (after each is released), so the next scenario starts
    with every max_connections slot free. RDS Proxy would trim them too, only more slowly."""
    with _console(stack) as conn:
        conn.execute("RECONNECT")
    deadline = time.monotonic() + timeout_s
    while (held := server_connections(stack)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if held:
        raise TimeoutError(f"the proxy still holds {held} server connections after {timeout_s:.0f} s")


def reload_and_reconnect(stack: StackEndpoints) -> None:
    """Re-read pgbouncer.ini (e.g. a new upstream) and close server connections as they are released."""
    with _console(stack) as conn:
        conn.execute("RELOAD")
        conn.execute("RECONNECT")
