"""A writer workload that knows exactly which writes were acknowledged: the yardstick of every drill.

One thread inserts numbered rows, one transaction each, and records the number only after COMMIT returned.
Each transaction sets its own statement timeout (SET LOCAL: the proxy pools per transaction, so a session
SET would leak to other clients) and each connection a connect timeout, a TCP user timeout (a dead peer)
and a client-side request timeout (a silent network behind a proxy that ACKs the bytes itself), so a
request fails within seconds instead of hanging the drill. Bounded in time and count.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from harness.endpoints import PostgresEndpoint

TABLE = "drill.acks"
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 3000
# Just above the server's statement timeout: the server ends a slow statement first, the client a silent link.
REQUEST_TIMEOUT_S = STATEMENT_TIMEOUT_MS / 1000 + 1
# Unacknowledged bytes older than this close the connection (Linux TCP_USER_TIMEOUT): a blackhole bound.
TCP_USER_TIMEOUT_MS = 5000


def prepare_table(admin: PostgresEndpoint) -> None:
    with admin.connect(autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS drill")
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")


def stored_ids(endpoint: PostgresEndpoint) -> set[int]:
    with endpoint.connect(autocommit=True, connect_timeout=10) as conn:
        return {int(r[0]) for r in conn.execute(f"SELECT id FROM {TABLE}")}


@dataclass
class WriteLoad:
    """Writes through `endpoint` until stopped, max_s passed or max_writes were acknowledged."""

    endpoint: PostgresEndpoint
    max_s: float = 120.0
    max_writes: int = 100_000
    pause_s: float = 0.005
    acknowledged: list[int] = field(default_factory=list)
    failures: int = 0
    # (monotonic time, ok) for every attempt: the recovery curve.
    attempts: list[tuple[float, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> WriteLoad:
        self._thread = threading.Thread(target=self._run, name="drill-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=REQUEST_TIMEOUT_S + CONNECT_TIMEOUT_S + 10)

    def __enter__(self) -> WriteLoad:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _connect(self) -> Any:
        return self.endpoint.connect(
            autocommit=True,
            prepare_threshold=None,
            connect_timeout=CONNECT_TIMEOUT_S,
            tcp_user_timeout=TCP_USER_TIMEOUT_MS,
            request_timeout_s=REQUEST_TIMEOUT_S,
        )

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        conn: Any = None
        n = 0
        while not self._stop.is_set() and time.monotonic() < deadline and len(self.acknowledged) < self.max_writes:
            n += 1
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                with conn.transaction():
                    conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
                    conn.execute(f"INSERT INTO {TABLE} (id) VALUES (%s)", (n,))
                self.acknowledged.append(n)
                self.attempts.append((time.monotonic(), True))
            except Exception:
                self.failures += 1
                self.attempts.append((time.monotonic(), False))
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                time.sleep(0.05)
            time.sleep(self.pause_s)
        if conn is not None:
            conn.close()

    def first_success_after(self, moment: float) -> float | None:
        return next((t for t, ok in self.attempts if ok and t > moment), None)

    def failures_between(self, start: float, end: float) -> int:
        return sum(1 for t, ok in self.attempts if not ok and start <= t <= end)

    def wait_for_success_after(self, moment: float, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.first_success_after(moment)
            if found is not None:
                return found
            time.sleep(0.05)
        return None
