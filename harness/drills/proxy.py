"""Drill: the proxy (PgBouncer as RDS Proxy) restarted under a writer: failed requests, time to reconnect,
and no acknowledged write lost (a request either failed visibly or is stored)."""

from __future__ import annotations

import time
from typing import Any

from harness.backends.base import Backend
from harness.drills.result import DrillResult
from harness.drills.writes import WriteLoad, prepare_table, stored_ids
from harness.endpoints import StackEndpoints


def run(backend: Backend, stack: StackEndpoints, report: Any = print) -> DrillResult:
    result = DrillResult("proxy")
    prepare_table(stack.direct)
    with WriteLoad(stack.proxy, max_s=120) as load:
        time.sleep(1.0)
        began = time.monotonic()
        backend.restart("pgbouncer", report)
        # A write acknowledged before the proxy went down is not a reconnect: count from the restart's end.
        back = load.wait_for_success_after(time.monotonic(), 60)
        time.sleep(0.5)
    lost = [n for n in load.acknowledged if n not in stored_ids(stack.direct)]
    result.figures["reconnect_s"] = round(back - began, 2) if back else None
    result.figures["failed_requests"] = load.failures_between(began, back or time.monotonic())
    result.figures["acknowledged_writes"] = len(load.acknowledged)
    result.figures["acknowledged_writes_lost"] = len(lost)
    result.check(
        "clients reconnect", back is not None, f"first write {result.figures['reconnect_s']} s after the restart"
    )
    result.check("no acknowledged write lost", not lost, f"{len(lost)} lost")
    result.notes.append("RDS Proxy fails over without a restart visible to clients; PgBouncer drops its clients")
    return result
