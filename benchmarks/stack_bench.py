"""Time the embedded stack: `harness up` to ready (first start with initdb, and restart on existing
state) and ready to down. Runs a throw-away stack on free ports in a temporary state directory.

    .venv/bin/python benchmarks/stack_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for sock in socks:
        sock.close()
    return ports


def timed(env: dict[str, str], *args: str) -> float:
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"harness {' '.join(args)} failed:\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"up, fresh state (initdb)": [], "up, existing state": [], "down": []}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="stack-bench-") as tmp:
            pg, proxy, redis, aws, lambda_port = free_ports(5)
            env = {
                **os.environ,
                "HARNESS_STATE_DIR": str(Path(tmp) / "state"),
                "HARNESS_POSTGRES_PORT": str(pg),
                "HARNESS_PROXY_PORT": str(proxy),
                "HARNESS_REDIS_PORT": str(redis),
                "HARNESS_AWS_PORT": str(aws),
                "HARNESS_LAMBDA_PORT": str(lambda_port),
            }
            try:
                figures["up, fresh state (initdb)"].append(timed(env, "up"))
                figures["down"].append(timed(env, "down"))
                figures["up, existing state"].append(timed(env, "up"))
                figures["down"].append(timed(env, "down"))
            finally:
                subprocess.run([sys.executable, "-m", "harness.cli", "down", "--purge"], env=env, capture_output=True)
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
    print(f"{'phase':<28}{'runs':>6}{'median s':>10}{'min s':>8}{'max s':>8}")
    for phase, values in figures.items():
        print(f"{phase:<28}{len(values):>6}{statistics.median(values):>10.2f}{min(values):>8.2f}{max(values):>8.2f}")
    print(f"machine: {os.cpu_count()} cores; each figure includes the CLI's own start (~0.3 s)")


if __name__ == "__main__":
    main()
