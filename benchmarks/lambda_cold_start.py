"""What a cold start costs on a Lambda runtime: container environments (compose) or worker processes (embedded).

Creates two 128 MB functions, one returning at once and one importing boto3 and psycopg at INIT as the GDPR
functions do, and before each invocation changes a function's description, which retires its warm
environments, so every invocation is cold. Prints, per function, the medians of the client's round trip,
of Init Duration and of Duration, then one warm round trip for comparison. Deletes its functions after.

    .venv/bin/python benchmarks/lambda_cold_start.py [--runs 5] [--lambda-url http://127.0.0.1:PORT]

Without --lambda-url it uses the running stack's runtime (`harness up`, either backend).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import statistics
import sys
import time
import zipfile

from harness.app.gdpr_invoke import invoke, lambda_client
from harness.config import resolve_settings
from harness.endpoints import load_endpoints

FUNCTIONS = {
    "coldstart-empty": "def handler(event, context):\n    return 1\n",
    "coldstart-imports": "import boto3\nimport psycopg\nimport redis\n\ndef handler(event, context):\n    return 1\n",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold invocations per function")
    parser.add_argument("--lambda-url", help="another runtime than the stack's (its AWS endpoint stays the stack's)")
    args = parser.parse_args()
    stack = load_endpoints(resolve_settings().state_dir)
    if stack is None:
        print("no running stack: run `harness up`", file=sys.stderr)
        return 1
    aws = dataclasses.replace(stack.aws, lambda_url=args.lambda_url or stack.aws.lambda_url)
    client = lambda_client(aws)
    print(f"runtime {aws.lambda_url}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for name, code in FUNCTIONS.items():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", code)
        client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role="arn:aws:iam::000000000000:role/bench",
            Handler="app.handler",
            Code={"ZipFile": buffer.getvalue()},
            MemorySize=128,
            Timeout=30,
        )
        try:
            trips, inits, durations = [], [], []
            for run in range(args.runs):
                client.update_function_configuration(FunctionName=name, Description=f"cold start {run}")
                began = time.perf_counter()
                result = invoke(client, name, {})
                trips.append((time.perf_counter() - began) * 1000)
                assert result.function_error is None, result.payload
                inits.append(result.report.init_duration_ms or 0.0)
                durations.append(result.report.duration_ms)
            began = time.perf_counter()
            invoke(client, name, {})
            warm = (time.perf_counter() - began) * 1000
        finally:
            client.delete_function(FunctionName=name)
        print(
            f"{name:18} cold: round trip {statistics.median(trips):7.1f} ms, init {statistics.median(inits):7.1f} ms, "
            f"duration {statistics.median(durations):6.1f} ms (median of {args.runs}); warm round trip {warm:6.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
