"""The fault-injecting TCP proxy against a local echo server: bytes pass unchanged, latency and jitter are
added, a reset reaches the client, a blackhole holds bytes for its N seconds and then delivers them, and
stop leaves nothing listening."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harness.services.fault_proxy import FaultProxy, FaultProxyError, running_fault_proxies


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
def proxy(echo_port: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo_port, name="test-fault-proxy") as started:
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


def rtt_s(sock: socket.socket) -> float:
    began = time.monotonic()
    assert roundtrip(sock, b"ping") == b"ping"
    return time.monotonic() - began


def test_bytes_pass_through_unchanged(proxy: FaultProxy) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        assert roundtrip(sock, payload) == payload


def test_added_latency_delays_each_direction(proxy: FaultProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        proxy.set_latency(150)
        assert rtt_s(sock) >= 0.3
        proxy.clear()
        assert rtt_s(sock) < 0.3


def test_jitter_varies_the_delay_but_never_reorders_bytes(proxy: FaultProxy) -> None:
    proxy.set_latency(60, jitter_ms=60)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        rtts = [rtt_s(sock) for _ in range(12)]
        stream = b"".join(i.to_bytes(4, "big") for i in range(20_000))
        sock.sendall(stream)
        received = b""
        while len(received) < len(stream):
            received += sock.recv(65536)
    assert max(rtts) - min(rtts) > 0.03, rtts
    assert received == stream


def test_a_reset_reaches_the_client_and_new_connections_still_work(proxy: FaultProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        assert roundtrip(sock, b"x") == b"x"
        assert proxy.reset_connections() == 1
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"y")
            if not sock.recv(1):
                raise ConnectionResetError("closed")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        assert roundtrip(sock, b"z") == b"z"


def test_a_blackhole_holds_bytes_for_its_seconds_then_delivers_them(proxy: FaultProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        proxy.blackhole(1.5)
        began = time.monotonic()
        sock.sendall(b"held")
        sock.settimeout(0.7)
        with pytest.raises(TimeoutError):
            sock.recv(4)
        sock.settimeout(10)
        assert sock.recv(4) == b"held"
        assert time.monotonic() - began >= 1.5


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
