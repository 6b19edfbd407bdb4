"""What a worker does inside a container environment and not in a process: forward the unit's ports, and
read the container's own memory accounting. Standard library only, like the worker it runs in.

Forwarding: functions find the proxy and Redis at the address Secrets Manager holds and the AWS emulator at
AWS_ENDPOINT_URL: 127.0.0.1 and the port compose published on the host, and the server certificate names
127.0.0.1. Inside a container 127.0.0.1 is the container. So, before INIT, each published port listens on
the container's own 127.0.0.1 and relays bytes unchanged to <service>:<container port> on the compose
network: secrets, endpoints and TLS verification stay exactly as on the host (the relay never sees
plaintext). Host networking would do the same without a relay, but only on Linux engines; Docker Desktop
runs containers in a VM where the host's 127.0.0.1 is not the container's.

Memory: the container's cgroup peak (v2 memory.peak, v1 memory.max_usage_in_bytes) counts what the kernel
charged the whole environment, the worker's page cache and any child included, as the engine's limit
does. The cgroup filesystem is read-only in an unprivileged container, so that peak cannot be reset: it
is the environment's high-water mark since it started. The worker's own VmHWM, which it can reset, is the
per-invocation floor (pages of the image another container read first are charged to that one).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

FORWARD_VARIABLE = "_HARNESS_LAMBDA_FORWARD"
# Set in containers: each reply carries the invocation's memory peak and CPU time, measured inside.
USAGE_VARIABLE = "_HARNESS_LAMBDA_USAGE"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# v2 first: a v1 host mounts the memory controller under memory/.
CGROUP_PEAK_FILES = ("memory.peak", "memory/memory.max_usage_in_bytes")
_CHUNK = 64 * 1024


def format_forwards(forwards: dict[int, tuple[str, int]]) -> str:
    """`{15432: ("postgres", 5432)}` as the variable carries it: `15432=postgres:5432`, comma separated."""
    return ",".join(f"{port}={host}:{target}" for port, (host, target) in sorted(forwards.items()))


def parse_forwards(text: str) -> dict[int, tuple[str, int]]:
    """The inverse of format_forwards; a malformed entry raises ValueError naming it."""
    forwards: dict[int, tuple[str, int]] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        listen, _, target = entry.partition("=")
        host, _, port = target.rpartition(":")
        if not (listen.isdigit() and host and port.isdigit()):
            raise ValueError(f"bad port forward {entry!r}: expected <local port>=<host>:<port>")
        forwards[int(listen)] = (host, int(port))
    return forwards


def start_forwarding(forwards: dict[int, tuple[str, int]], host: str = "127.0.0.1") -> list[socket.socket]:
    """Listen on every port now (a function's first connection must find it), relay in daemon threads."""
    listeners = []
    for port, target in forwards.items():
        listener = socket.create_server((host, port), reuse_port=False)
        threading.Thread(target=_accept, args=(listener, target), daemon=True, name=f"forward-{port}").start()
        listeners.append(listener)
    return listeners


def _accept(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError:
            # The client sees a closed connection, as it would from a service that is down.
            client.close()
            continue
        upstream.settimeout(None)
        threading.Thread(target=_connect, args=(client, upstream), daemon=True).start()


def _connect(client: socket.socket, upstream: socket.socket) -> None:
    back = threading.Thread(target=_relay, args=(upstream, client), daemon=True)
    back.start()
    _relay(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _relay(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(_CHUNK):
            sink.sendall(chunk)
    except OSError:
        pass
    # Half-close, so the other direction can finish (a TLS close_notify, a last reply) before both close.
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def cgroup_peak_bytes(root: Path = CGROUP_ROOT) -> int | None:
    """The container's memory high-water mark in bytes, or None where the kernel keeps none."""
    for name in CGROUP_PEAK_FILES:
        try:
            return int((root / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return None


def reset_own_peak_rss() -> None:
    """Restart this process's VmHWM, so the next read measures one invocation."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def own_peak_rss_bytes(status: Path = Path("/proc/self/status")) -> int:
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
