"""A fault-injecting TCP proxy: the network between clients and a service, made bad on purpose.

Toxiproxy, the usual tool, has no package reachable here (PyPI ships only its clients), so the network drill
runs this small asyncio proxy instead. It forwards bytes unchanged (TLS passes through end to end: the
client still verifies the server's certificate) and can add latency and jitter to each direction, reset
every open connection (a TCP RST to both sides), and blackhole the link for N seconds: bytes are held, not
delivered, as a network partition does to TCP until it heals.

A user-space proxy ACKs what it receives itself, so a client's TCP_USER_TIMEOUT or keepalives never notice
a blackhole here: only the client's own request timeouts bound it, which is what the drill shows.

The event loop runs in a thread of the caller's process; `stop()` closes the listener and every connection
and joins the thread, so nothing is left listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CHUNK = 65536
READY_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
POLL_S = 0.05


class FaultProxyError(RuntimeError):
    pass


# Every proxy started in this process and not yet stopped: what a drill's cleanup check looks at.
_RUNNING: set[FaultProxy] = set()


def running_fault_proxies() -> list[str]:
    """'name 127.0.0.1:port' of every fault proxy of this process still running (threads or listeners)."""
    return sorted(f"{p.name} 127.0.0.1:{p._port}" for p in _RUNNING)


@dataclass(frozen=True)
class FaultProxyEndpoint:
    host: str
    port: int
    upstream_host: str
    upstream_port: int


@dataclass
class Faults:
    """What the link does now; read by the forwarding tasks for every chunk."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    # The proxy's clock reading until which bytes are held (0: no blackhole).
    blackhole_until: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(17))

    def delay_s(self) -> float:
        if not self.latency_ms and not self.jitter_ms:
            return 0.0
        jitter = self.rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() sends RST instead of FIN, as a middlebox resetting the connection does.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Listens on 127.0.0.1:`port` (0: a free port) and forwards to upstream_host:upstream_port.

    When a held chunk is due is read from `now` (seconds, any origin): the system's monotonic clock in every
    real run, a virtual one in tests, so the delays are checked exactly however loaded the machine is. The
    forwarding tasks poll it at most POLL_S apart while they hold a chunk.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        port: int = 0,
        name: str = "fault-proxy",
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.requested_port = port
        self.name = name
        self.now = now
        self.faults = Faults()
        self.connections_seen = 0
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def endpoint(self) -> FaultProxyEndpoint:
        if not self._port:
            raise FaultProxyError(f"{self.name} is not running")
        return FaultProxyEndpoint("127.0.0.1", self._port, self.upstream_host, self.upstream_port)

    @property
    def port(self) -> int:
        return self.endpoint.port

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> FaultProxy:
        if self._thread is not None:
            raise FaultProxyError(f"{self.name} is already running")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s) or self._error is not None:
            if self._error is None:
                self.stop()
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
            raise FaultProxyError(
                f"{self.name} could not listen on 127.0.0.1:{self.requested_port or '(free port)'}: "
                f"{self._error or 'no answer within ' + str(timeout_s) + ' s'}; choose another port"
            )
        _RUNNING.add(self)
        try:
            self.wait_ready(timeout_s)
        except FaultProxyError:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """A real probe: a TCP connection to the listener is accepted before the deadline."""
        deadline = time.monotonic() + timeout_s
        last: OSError | None = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=1.0):
                    return
            except OSError as exc:
                last = exc
                time.sleep(0.05)
        raise FaultProxyError(f"{self.name} on port {self._port} not accepting after {timeout_s} s: {last}")

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError, TimeoutError):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(STOP_TIMEOUT_S)
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():
                raise FaultProxyError(f"{self.name} did not stop within {STOP_TIMEOUT_S} s")
        _RUNNING.discard(self)
        self._thread = None
        self._port = 0

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- faults ----------------------------------------------------------------------------------------

    def set_latency(self, latency_ms: float, jitter_ms: float = 0.0) -> None:
        self.faults.latency_ms, self.faults.jitter_ms = float(latency_ms), float(jitter_ms)

    def blackhole(self, seconds: float) -> None:
        """Hold every byte in both directions for `seconds`; new connections are accepted but silent too."""
        self.faults.blackhole_until = self.now() + seconds

    def clear(self) -> None:
        self.faults.latency_ms = self.faults.jitter_ms = 0.0
        self.faults.blackhole_until = 0.0

    def reset_connections(self) -> int:
        """Reset every open connection (RST to the client and to the upstream); the count reset."""
        if self._loop is None:
            raise FaultProxyError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(self._reset(), self._loop).result(STOP_TIMEOUT_S)

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    # ---- the loop --------------------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.requested_port, reuse_address=True)
            )
            self._port = int(self._server.sockets[0].getsockname()[1])
        except OSError as exc:
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self._reset()

    async def _reset(self) -> int:
        pairs = list(self._pairs)
        for client, upstream in pairs:
            _abort_with_rst(client)
            _abort_with_rst(upstream)
        self._pairs.clear()
        return len(pairs)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections_seen += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            _abort_with_rst(client_writer)
            return
        pair = (client_writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(client_reader, up_writer), self._pipe(up_reader, client_writer))
        finally:
            self._pairs.discard(pair)
            for writer in pair:
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One direction: chunks queued with the time they are due, delivered in order, held in a blackhole."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def receive() -> None:
            due = 0.0
            try:
                while data := await reader.read(CHUNK):
                    # Never earlier than the chunk before: jitter must not reorder a byte stream.
                    due = max(due, self.now() + self.faults.delay_s())
                    queue.put_nowait((due, data))
            except OSError:
                pass
            finally:
                queue.put_nowait((max(due, self.now()), b""))

        receiver = asyncio.create_task(receive())
        try:
            while True:
                due, data = await queue.get()
                while (wait := max(due, self.faults.blackhole_until) - self.now()) > 0:
                    await asyncio.sleep(min(wait, POLL_S))
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            pass
        finally:
            receiver.cancel()
