"""Burstable unit, measured side by side in one run: the drained caps against the uncapped ("off") unit.

On a stack started with cpu_credits = drained (HARNESS_CPU_CREDITS=drained) and enforced cgroups, each round measures
both sides back to back by moving the running servers' caps, so the shared machine's load falls on both:

  cpu     a CPU-bound Lua script on the cache node (single-threaded Redis): time at the drained baseline
          (0.2 vCPU) against the node uncapped (it can use one core); expected ratio = share ratio 1 / 0.2
  redis   redis-benchmark GET, 20 connections: requests/s drained and uncapped
  disk    4 KiB O_DIRECT random reads of a file on the PostgreSQL data device, from a process in the
          PostgreSQL cgroup: IOPS at the drained cap (gp2 20 GB: 100) and uncapped; then what the cap does
          not hold: buffered writes with fsync (writeback is not attributed to the group in cgroup v1)

Every load is bounded in time and count and targets 127.0.0.1; the caps are put back as they were at the
end, also on failure. Needs `harness up` (no seed).

    .venv/bin/python benchmarks/burst_bench.py [--rounds 3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.backends import get_backend
from harness.config import resolve_settings
from harness.endpoints import RedisEndpoint, StackEndpoints
from harness.services.cgroups import CgroupLimiter
from harness.sizing import cache_node_type

GRACE_S = 60
# About 0.15 s of one core here when uncapped: long enough to swamp scheduling noise, short enough at 0.2.
LUA_LOOP = "local x = 0 for i = 1, tonumber(ARGV[1]) do x = x + i % 7 end return x"
LUA_ITERATIONS = 5_000_000
BLOCK = 4096
TEST_FILE_BYTES = 256 * 1024**2

# Runs in a child that joins the PostgreSQL cgroup before exec: random O_DIRECT reads (or writes) for a
# bounded time, prints the operations done and the seconds taken.
DIRECT_IO = r"""
import mmap, os, random, sys, time
path, seconds, write = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "write"
fd = os.open(path, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)
blocks = os.fstat(fd).st_size // 4096
buf = mmap.mmap(-1, 4096)
rng = random.Random(7)
done, start = 0, time.perf_counter()
while done < 1_000_000 and time.perf_counter() - start < seconds:
    offset = rng.randrange(blocks) * 4096
    os.preadv(fd, [buf], offset) if not write else os.pwritev(fd, [buf], offset)
    done += 1
print(done, time.perf_counter() - start)
"""

BUFFERED_WRITE = r"""
import os, sys, time
path, megabytes, fsync = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "fsync"
chunk = b"x" * (1024 * 1024)
start = time.perf_counter()
with open(path, "wb") as handle:
    for _ in range(megabytes):
        handle.write(chunk)
    handle.flush()
    if fsync:
        os.fsync(handle.fileno())
print(megabytes, time.perf_counter() - start)
"""


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"median {statistics.median(values):.3g} (min {min(values):.3g}, max {max(values):.3g}, n={len(values)})"


def redis_cpu_s(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_cpu_bound(endpoint: RedisEndpoint, shares: list[float]) -> float:
    """Wall time of the script; appends the share of a core Redis got meanwhile (its CPU time / wall)."""
    client = endpoint.client(socket_timeout=120, socket_connect_timeout=5)
    try:
        cpu_before = redis_cpu_s(client)
        started = time.perf_counter()
        client.eval(LUA_LOOP, 0, LUA_ITERATIONS)
        took = time.perf_counter() - started
        shares.append((redis_cpu_s(client) - cpu_before) / took)
        return took
    finally:
        client.close()


def redis_benchmark(endpoint: RedisEndpoint, requests: int, seconds: float) -> float:
    # redis-benchmark takes the password only as -a; the process list shows it for the run, on this machine.
    command = [
        "redis-benchmark", "-h", endpoint.host, "-p", str(endpoint.port), "-a", endpoint.password.reveal(),
        "-t", "get", "-n", str(requests), "-c", "20", "--csv",
    ]  # fmt: skip
    if endpoint.tls:
        # TLS is the default (tls = required): redis-benchmark verifies the server like the harness's clients.
        command += ["--tls", *(["--cacert", endpoint.ca_file] if endpoint.ca_file else [])]
    run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + GRACE_S)
    if run.returncode != 0:
        raise SystemExit(f"redis-benchmark failed (exit {run.returncode})")
    return float(run.stdout.strip().splitlines()[-1].split(",")[1].strip('"'))


def in_group(group: CgroupLimiter, script: str, *args: str, timeout_s: float) -> list[str]:
    def join() -> None:
        group.join(os.getpid())

    run = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout_s, preexec_fn=join
    )
    if run.returncode != 0:
        raise SystemExit(f"I/O child failed: {run.stderr[-500:]}")
    return run.stdout.split()


def side_by_side(
    rounds: int, measure: Callable[[], float], cap: Callable[[], None], uncap: Callable[[], None]
) -> tuple[list[float], list[float]]:
    """Alternate the two sides, starting each round on a different one, so drift falls on both."""
    capped, uncapped = [], []
    for i in range(rounds):
        order = [(cap, capped), (uncap, uncapped)]
        for setter, into in order if i % 2 == 0 else reversed(order):
            setter()
            into.append(measure())
    return capped, uncapped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each disk measurement")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.seconds <= 120:
        parser.error("--rounds must be 1..20 and --seconds 1..120")
    settings = resolve_settings()
    stack: StackEndpoints | None = get_backend(settings).endpoints()
    if stack is None:
        print("the stack is not up: run `harness up` first", file=sys.stderr)
        return 1
    credits = stack.facts.get("credits") or {}
    if credits.get("mode") != "drained" or not credits.get("enforced"):
        print(
            f"needs a drained, enforced unit (HARNESS_CPU_CREDITS=drained); here: {credits.get('detail')}",
            file=sys.stderr,
        )
        return 1
    node = cache_node_type(stack.facts["redis"]["node_type"])
    assert node.credits is not None
    baseline = node.credits.baseline_vcpus
    redis_group = CgroupLimiter(credits["redis_cgroup"])
    pg_group = CgroupLimiter(credits["postgres_cgroup"])
    storage = credits["storage"]
    device = storage.get("device")
    io_cap = pg_group.io_limits(device) if device else {}
    print(
        f"cache node {node.name}: drained cap {baseline:g} vCPU (CFS period {redis_group.cpu_limit()[1]} us); "
        f"uncapped it may use {node.vcpus} vCPUs, of which single-threaded Redis uses one"
    )
    share_ratio = min(1.0, node.vcpus) / baseline
    try:
        # -- cpu ------------------------------------------------------------------------------------
        redis_cpu_bound(stack.redis, [])  # warm the script cache
        shares: dict[bool, list[float]] = {True: [], False: []}
        state = {"capped": True}

        def cap_cpu(capped: bool) -> None:
            state["capped"] = capped
            redis_group.set_cpu_limit(baseline if capped else float(node.vcpus))

        capped, uncapped = side_by_side(
            args.rounds,
            lambda: redis_cpu_bound(stack.redis, shares[state["capped"]]),
            lambda: cap_cpu(True),
            lambda: cap_cpu(False),
        )
        ratios = [c / u for c, u in zip(capped, uncapped, strict=True)]
        print(f"\ncpu: EVAL loop of {LUA_ITERATIONS:,} iterations on the cache node")
        print(f"  drained: {spread(capped)} s    off: {spread(uncapped)} s")
        print(f"  share of a core Redis got: drained {spread(shares[True])}    off {spread(shares[False])}")
        median = statistics.median(ratios)
        verdict = "within" if abs(median / share_ratio - 1) <= 0.15 else "OUTSIDE"
        print(f"  time ratio drained/off: {spread(ratios)}; share ratio {share_ratio:g}: {verdict} 15 %")
        # On a machine whose other loads keep the uncapped side below a full core, the time ratio can only
        # reach (share it got off) / 0.2; the cap itself is checked by the share it allowed.
        got = statistics.median(shares[True])
        verdict = "within" if abs(got / baseline - 1) <= 0.15 else "OUTSIDE"
        print(f"  drained share {got:.3f} of a core against the cap {baseline:g}: {verdict} 15 %")

        # -- redis-benchmark ------------------------------------------------------------------------
        capped, uncapped = side_by_side(
            args.rounds,
            lambda: redis_benchmark(stack.redis, 100_000, 120),
            lambda: redis_group.set_cpu_limit(baseline),
            lambda: redis_group.set_cpu_limit(float(node.vcpus)),
        )
        print("\nredis-benchmark -t get -c 20 -n 100000")
        print(f"  drained: {spread(capped)} req/s    off: {spread(uncapped)} req/s")
        print(f"  throughput ratio off/drained: {spread([u / c for c, u in zip(capped, uncapped, strict=True)])}")

        # -- disk -----------------------------------------------------------------------------------
        if not io_cap.get("read_iops"):
            print(f"\ndisk: NOT capped here ({storage.get('detail')}); skipped")
            return 0
        data_dir = Path(stack.facts["state_dir"]) / "postgres"
        with tempfile.TemporaryDirectory(prefix="burst-bench-", dir=data_dir) as tmp:
            path = Path(tmp) / "random-read.bin"
            with open(path, "wb") as handle:
                for _ in range(TEST_FILE_BYTES // (1024 * 1024)):
                    handle.write(os.urandom(1024 * 1024))
            # Written back now, so the reads do not queue behind the file's own writeback.
            os.sync()
            bytes_cap = io_cap.get("read_bps") or None

            def iops(kind: str) -> float:
                done, took = in_group(pg_group, DIRECT_IO, str(path), str(args.seconds), kind, timeout_s=300)
                return int(done) / float(took)

            for kind in ("read", "write"):
                capped, uncapped = side_by_side(
                    args.rounds,
                    lambda kind=kind: iops(kind),  # type: ignore[misc]
                    lambda: pg_group.set_io_limits(device, io_cap["read_iops"], bytes_cap),
                    lambda: pg_group.set_io_limits(device, None, None),
                )
                cap = io_cap["read_iops"]
                print(f"\ndisk: 4 KiB O_DIRECT random {kind}s, {args.seconds:g} s each, from the PostgreSQL cgroup")
                print(f"  capped at {cap} IOPS: {spread(capped)} IOPS    uncapped: {spread(uncapped)} IOPS")
                median = statistics.median(capped)
                verdict = "within" if abs(median / cap - 1) <= 0.10 else "OUTSIDE"
                print(f"  capped median is {100 * (median / cap - 1):+.1f} % from {cap}: {verdict} 10 %")
            pg_group.set_io_limits(device, io_cap["read_iops"], bytes_cap)
            for fsync in ("fsync", "nofsync"):
                before = pg_group.io_serviced(device)
                megabytes, took = in_group(
                    pg_group, BUFFERED_WRITE, str(Path(tmp) / f"{fsync}.bin"), "64", fsync, timeout_s=300
                )
                os.sync()  # flush what is left from outside the group
                after = pg_group.io_serviced(device)
                writes = (after[1] - before[1]) if after and before else -1
                rate = int(megabytes) / float(took)
                how = " + fsync in the group" if fsync == "fsync" else ", flushed by sync outside it"
                print(
                    f"\ndisk: 64 MiB buffered write{how}"
                    f" under the cap ({bytes_cap / 1e6:g} MB/s): {rate:.1f} MB/s in the writer; write I/Os the "
                    f"group was charged: {writes}"
                )
    finally:
        redis_group.set_cpu_limit(baseline)
        if io_cap.get("read_iops") and device:
            pg_group.set_io_limits(device, io_cap["read_iops"], io_cap.get("read_bps") or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
