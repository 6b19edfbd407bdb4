"""What a worker does in a container environment, without an engine: the port forwards, the cgroup's peak, the
stdio channel, and the limits status reads back from `docker inspect`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.backends.compose_lambda import describe_limits, published_forwards
from harness.lambda_runtime.container import limits_of
from harness.lambda_runtime.protocol import read_frame, write_frame
from harness.lambda_runtime.sandbox import (
    cgroup_peak_bytes,
    format_forwards,
    own_peak_rss_bytes,
    parse_forwards,
    start_forwarding,
)

MIB = 1024 * 1024


def test_forwards_round_trip_through_the_variable():
    forwards = {27433: ("pgbouncer", 6432), 27379: ("redis", 6379)}
    text = format_forwards(forwards)
    assert text == "27379=redis:6379,27433=pgbouncer:6432"
    assert parse_forwards(text) == forwards
    assert parse_forwards("") == {}


@pytest.mark.parametrize("bad", ["27433", "27433=pgbouncer", "x=pgbouncer:6432", "27433=:6432"])
def test_a_malformed_forward_is_refused_with_its_text(bad):
    with pytest.raises(ValueError, match="bad port forward"):
        parse_forwards(bad)


def test_each_published_port_goes_to_its_service_on_the_compose_network():
    values = {
        "HARNESS_POSTGRES_PORT": "15432",
        "HARNESS_PROXY_PORT": "16432",
        "HARNESS_REDIS_PORT": "16379",
        "HARNESS_AWS_PORT": "14566",
    }
    assert published_forwards(values) == {
        15432: ("postgres", 5432),
        16432: ("pgbouncer", 6432),
        16379: ("redis", 6379),
        14566: ("aws", 4566),
    }


def test_the_forwarder_relays_both_ways_and_passes_the_close_on():
    upstream = socket.create_server(("127.0.0.1", 0))
    target = upstream.getsockname()

    def echo_then_close() -> None:
        conn, _ = upstream.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data.upper())

    threading.Thread(target=echo_then_close, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listeners = start_forwarding({port: target})
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"select 1")
            assert client.recv(1024) == b"SELECT 1"
            client.shutdown(socket.SHUT_WR)
            # The upstream saw the half-close, closed, and the client sees the end.
            assert client.recv(1024) == b""
    finally:
        for listener in listeners:
            listener.close()
        upstream.close()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.peak": "73400320\n"}, 73400320),
        ({"memory/memory.max_usage_in_bytes": "536870912\n"}, 536870912),
        ({"memory.peak": "garbage\n", "memory/memory.max_usage_in_bytes": "4096\n"}, 4096),
        ({}, None),
    ],
)
def test_the_cgroup_peak_is_read_from_v2_or_v1(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_peak_bytes(tmp_path) == expected


def test_the_own_peak_rss_is_read_from_proc_status(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython3\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n")
    assert own_peak_rss_bytes(status) == 20480 * 1024
    assert own_peak_rss_bytes(tmp_path / "missing") == 0


def test_limits_are_read_back_from_a_quota_or_nano_cpus():
    quota = {"HostConfig": {"Memory": 512 * MIB, "MemorySwap": 512 * MIB, "CpuQuota": 28943, "CpuPeriod": 100000}}
    assert limits_of(quota) == {"memory_bytes": 512 * MIB, "memory_swap_bytes": 512 * MIB, "vcpus": 0.28943}
    nano = {"HostConfig": {"Memory": 0, "NanoCpus": 500_000_000}}
    assert limits_of(nano) == {"memory_bytes": None, "memory_swap_bytes": None, "vcpus": 0.5}
    read = {"read_from": "c1", **limits_of(quota)}
    assert describe_limits(read) == "engine holds c1: 512 MiB, 0.2894 vCPU"


def test_the_worker_on_stdio_keeps_replies_on_stdout_and_prints_on_stderr(tmp_path: Path):
    (tmp_path / "app.py").write_text(
        "def handler(event, context):\n    print('hello from', event['who'])\n    return 7\n"
    )
    environment = {
        "PATH": os.environ["PATH"],
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "_HANDLER": "app.handler",
        "AWS_LAMBDA_FUNCTION_NAME": "stdio",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PYTHONUNBUFFERED": "1",
        "_HARNESS_LAMBDA_USAGE": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "harness.lambda_runtime.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=environment,
    )
    assert worker.stdin is not None and worker.stdout is not None and worker.stderr is not None
    try:
        deadline = time.monotonic() + 30
        assert read_frame(worker.stdout.fileno(), deadline) == {"type": "ready"}
        request = {"request_id": "r1", "payload": '{"who": "stdio"}', "function_arn": "arn", "deadline_epoch_ms": 0}
        write_frame(worker.stdin.fileno(), request)
        reply = read_frame(worker.stdout.fileno(), deadline)
        assert (reply["type"], reply["payload"]) == ("result", "7")
        assert reply["usage"]["peak_bytes"] > 0 and reply["usage"]["cpu_seconds"] >= 0
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)
    assert "hello from stdio" in worker.stderr.read().decode()
