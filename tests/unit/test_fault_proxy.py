"""The fault-injecting TCP proxy against a local echo server: bytes pass unchanged, latency and jitter are
added, a reset reaches the client, a blackhole holds bytes for its N seconds and then delivers them, and
stop leaves nothing listening.

The delays are read from a virtual clock the test moves: a reply is checked never to arrive before the
clock has passed its due time, which holds however slowly a loaded machine runs the proxy's thread."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Iterator

import pytest

from harness.services.fault_proxy import FaultProxy, FaultProxyError, Faults, running_fault_proxies


class VirtualClock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        # The proxy's resets reach the echo server too.
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def proxy(echo_port: int, clock: VirtualClock) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo_port, name="test-fault-proxy", now=clock) as started:
        yield started


def roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def answered_at(sock: socket.socket, clock: VirtualClock, payload: bytes, step_s: float = 0.05) -> float:
    """Send payload, then move the clock step by step until the echo is back; the clock's reading then.

    Each step waits a moment of real time for the proxy to act on the new reading: on a loaded machine the
    answer may be seen a step late, never early, so only lower bounds are asserted on the result."""
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        assert clock.now < 30, f"no answer by virtual second {clock.now:.2f}; got {received!r}"
        if select.select([sock], [], [], 0.05)[0]:
            chunk = sock.recv(65536)
            assert chunk, "the proxy closed the connection"
            received += chunk
        else:
            clock.now += step_s
    assert received == payload
    return clock.now


def answered_without_the_clock_moving(sock: socket.socket, clock: VirtualClock, payload: bytes) -> bool:
    began = clock.now
    sock.settimeout(10)
    answer = roundtrip(sock, payload)
    return answer == payload and clock.now == began


def test_bytes_pass_through_unchanged(proxy: FaultProxy) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        assert roundtrip(sock, payload) == payload


def test_without_faults_bytes_go_through_at_once(proxy: FaultProxy, clock: VirtualClock) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        assert answered_without_the_clock_moving(sock, clock, b"ping")


def test_added_latency_delays_each_direction(proxy: FaultProxy, clock: VirtualClock) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        proxy.set_latency(150)
        assert answered_at(sock, clock, b"ping") >= 0.3
        proxy.clear()
        assert answered_without_the_clock_moving(sock, clock, b"pong")


def test_jitter_varies_the_delay_within_latency_plus_or_minus_jitter() -> None:
    faults = Faults(latency_ms=60, jitter_ms=60)
    delays = [faults.delay_s() for _ in range(50)]
    assert all(0 <= d <= 0.12 for d in delays), delays
    assert max(delays) - min(delays) > 0.03, delays


def test_jitter_never_reorders_bytes(proxy: FaultProxy, clock: VirtualClock) -> None:
    proxy.set_latency(60, jitter_ms=60)
    stream = b"".join(i.to_bytes(4, "big") for i in range(20_000))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        answered_at(sock, clock, stream, step_s=0.01)


def test_a_reset_reaches_the_client_and_new_connections_still_work(proxy: FaultProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        assert roundtrip(sock, b"x") == b"x"
        # start()'s readiness probe was a connection too, and the proxy may still be tearing it down (or only
        # now registering it): the reset counts ours and perhaps that one.
        assert proxy.reset_connections() >= 1
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"y")
            if not sock.recv(1):
                raise ConnectionResetError("closed")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        assert roundtrip(sock, b"z") == b"z"


def test_a_blackhole_holds_bytes_for_its_seconds_then_delivers_them(proxy: FaultProxy, clock: VirtualClock) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        proxy.blackhole(1.5)
        assert answered_at(sock, clock, b"held", step_s=0.25) >= 1.5
        assert answered_without_the_clock_moving(sock, clock, b"healed")


def test_stop_leaves_nothing_listening(echo_port: int) -> None:
    proxy = FaultProxy("127.0.0.1", echo_port).start()
    port = proxy.port
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert roundtrip(client, b"a") == b"a"
    proxy.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    client.settimeout(2)
    try:
        closed = client.recv(1) == b""
    except ConnectionResetError:
        closed = True
    client.close()
    assert closed, "a connection open at stop() must be closed too"
    assert not [t for t in threading.enumerate() if t.name == "fault-proxy"]


def test_a_port_in_use_is_refused_with_a_clear_message(echo_port: int) -> None:
    with pytest.raises(FaultProxyError, match="choose another port"):
        FaultProxy("127.0.0.1", echo_port, port=echo_port).start()


def test_running_proxies_are_listed_until_stopped(echo_port: int) -> None:
    proxy = FaultProxy("127.0.0.1", echo_port, name="listed").start()
    assert running_fault_proxies() == [f"listed 127.0.0.1:{proxy.port}"]
    proxy.stop()
    assert running_fault_proxies() == []
