"""Runs the AWS emulator so that a crash loses (almost) nothing, as AWS never loses a secret or a key.

ministack persists S3 object bodies as they are written (S3_PERSIST=1), but the rest of its state (buckets'
metadata and encryption, secrets, KMS keys, alarms) only at a clean shutdown (PERSIST_STATE=1): a SIGKILL
lost all of it. This entry point wraps ministack's ASGI app: after any request that may change state
(anything but GET/HEAD) it saves every service's state within CHECKPOINT_DELAY_S, on the event loop, so no
request handler runs while the state is copied; `POST /_harness/checkpoint` saves at once and answers
when the files are on disk, which the harness calls after creating the unit's resources. What a SIGKILL
can still lose: changes of the last CHECKPOINT_DELAY_S that nobody checkpointed (S3 object bodies never).

Run as `python -m harness.services.aws_persist` with ministack's own environment (BIND_HOST,
GATEWAY_PORT, STATE_DIR, ...).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

CHECKPOINT_PATH = "/_harness/checkpoint"
CHECKPOINT_DELAY_S = 0.5
_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("harness.aws_persist")


class Pending(Protocol):
    def cancel(self) -> None: ...


# Runs a callback after a delay in seconds: the running event loop's call_later in the emulator, a timer
# the test fires itself in the unit tests.
Schedule = Callable[[float, Callable[[], None]], Pending]


def call_later_on_the_running_loop(delay_s: float, callback: Callable[[], None]) -> Pending:
    return asyncio.get_running_loop().call_later(delay_s, callback)


class Checkpointer:
    """Saves the emulator's state on the event loop: soon after a change, or at once when asked."""

    def __init__(self, save: Callable[[], None], schedule: Schedule = call_later_on_the_running_loop) -> None:
        self._save = save
        self._schedule = schedule
        self._pending: Pending | None = None
        self.saves = 0

    def save_now(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._save()
        self.saves += 1

    def changed(self) -> None:
        if self._pending is None:
            self._pending = self._schedule(CHECKPOINT_DELAY_S, self._deferred)

    def _deferred(self) -> None:
        self._pending = None
        try:
            self._save()
            self.saves += 1
        except Exception:
            log.exception("checkpoint failed; the state is saved again after the next change")

    def wrap(self, app: Asgi) -> Asgi:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            if scope["path"] == CHECKPOINT_PATH and scope["method"] == "POST":
                self.save_now()
                body = json.dumps({"saved": True, "saves": self.saves}).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            try:
                await app(scope, receive, send)
            finally:
                if scope["method"] not in _READ_ONLY:
                    self.changed()

        return wrapped


def main() -> None:
    if os.environ.get("PERSIST_STATE") != "1":
        raise SystemExit("aws_persist: PERSIST_STATE=1 must be set (the harness's AWS service sets it)")
    import ministack.app as emulator
    from ministack.core.persistence import save_all

    build = emulator._build_persistence_save_dict

    def save() -> None:
        save_all(build())

    # main() serves the module's global `app`; replacing it is how the checkpoints get in front.
    emulator.app = Checkpointer(save).wrap(emulator.app)
    emulator.main()


if __name__ == "__main__":
    main()
