"""Durations of the GDPR functions and of a CPU-bound handler on the running stack's Lambda runtime.

Needs a stack that is up, seeded and deployed (`harness up`, `harness seed`, `harness deploy`). Prints,
from the REPORT lines: cold and warm durations of data_export for the smallest and the largest user and
of audit_logging for a batch of 1 and of 500, with Max Memory Used and GB-seconds; then the time of
the same CPU-bound work at 128, 512 and 1769 MB (Lambda's CPU share is proportional to memory). Writes
only export objects and audit entries; deletes nothing.

    .venv/bin/python benchmarks/lambda_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import zipfile

from harness.app.gdpr_invoke import InvocationSeries, invoke_series, lambda_client
from harness.config import resolve_settings
from harness.endpoints import load_endpoints

BURN = (
    "def handler(event, context):\n"
    "    total = 0\n"
    "    for i in range(event['n']):\n"
    "        total += i * i\n"
    "    return total % 7\n"
)


def line(label: str, series: InvocationSeries) -> str:
    warm = [r.duration_ms for r in series.reports if not r.cold_start]
    cold = [r for r in series.reports if r.cold_start]
    cold_text = f"cold {cold[0].duration_ms:8.1f} ms (init {cold[0].init_duration_ms:6.1f})" if cold else "cold     -"
    warm_text = f"warm median {statistics.median(warm):8.1f} ms" if warm else "warm -"
    return (
        f"{label:38} {cold_text}  {warm_text}  max mem {max(series.max_memory_used_mb)} MB  "
        f"errors {series.errors}  GB-s {series.gb_seconds:.4f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="invocations per case (the first may be cold)")
    args = parser.parse_args()
    stack = load_endpoints(resolve_settings().state_dir)
    if stack is None or not stack.aws.lambda_url:
        print(
            "no running stack with a Lambda runtime: run `harness up`, `harness seed`, `harness deploy`",
            file=sys.stderr,
        )
        return 1
    client = lambda_client(stack.aws)
    with stack.direct.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT u.user_id FROM app.users u LEFT JOIN app.events e USING (user_id) "
            "GROUP BY u.user_id ORDER BY count(e.*), u.user_id"
        ).fetchall()
    smallest, largest = rows[0][0], rows[-1][0]
    # A configuration change discards warm environments, so each function's first call below is cold.
    for name in ("data_export", "audit_logging"):
        try:
            config = client.get_function_configuration(FunctionName=name)
        except client.exceptions.ResourceNotFoundException:
            print(f"function {name} is not deployed: run `harness deploy`", file=sys.stderr)
            return 1
        client.update_function_configuration(FunctionName=name, Description=config.get("Description", "") + " ")
        client.update_function_configuration(FunctionName=name, Description=config.get("Description", ""))
    batch = [{"actor": "bench", "action": "bench.event", "subject_user_id": smallest}]
    cases = [
        (f"data_export user {smallest} (smallest)", "data_export", {"user_id": smallest}),
        (f"data_export user {largest} (largest)", "data_export", {"user_id": largest}),
        ("audit_logging batch of 1", "audit_logging", {"events": batch}),
        ("audit_logging batch of 500", "audit_logging", {"events": batch * 500}),
    ]
    for label, function, payload in cases:
        print(line(label, invoke_series(client, function, [payload], args.runs)), flush=True)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", BURN)
    durations = {}
    for memory in (128, 512, 1769):
        name = f"bench-burn-{memory}"
        try:
            client.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role="arn:aws:iam::000000000000:role/b",
                Handler="app.handler",
                Code={"ZipFile": buffer.getvalue()},
                MemorySize=memory,
                Timeout=120,
            )
            series = invoke_series(client, name, [{"n": 2_000_000}], args.runs)
        finally:
            client.delete_function(FunctionName=name)
        durations[memory] = statistics.median(r.duration_ms for r in series.reports if not r.cold_start)
        print(f"CPU-bound work at {memory:4} MB: median warm {durations[memory]:8.1f} ms", flush=True)
    print(f"ratio 128 MB / 1769 MB: {durations[128] / durations[1769]:.1f} (Lambda: 1769/128 = 13.8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
