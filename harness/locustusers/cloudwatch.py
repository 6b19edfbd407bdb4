"""CloudWatch during a Locust run, as during the scenarios: the stack's resources are sampled and what AWS would
emit is published (AWS/RDS, RDS Proxy, AWS/ElastiCache with the CPU-credit metrics; AWS/Lambda comes from the
Lambda runtime). At the end the published metrics' and the dashboards' datapoints over the run go into the run
facts, so the Locust report's checklist items and dashboards come from the same evidence as a sign-off's.

The sampler runs in a child process (`python -m harness.locustusers.cloudwatch`): inside Locust's gevent-patched
process its psutil walks and blocking calls starved the users (a short run could make no request at all). The
child is stopped by PID when Locust quits, and stops itself if Locust dies first or after MAX_RUN_S.

Not on an external deployment: AWS emits the metrics itself there (and refuses PutMetricData into AWS/ namespaces).
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.endpoints import StackEndpoints
from harness.monitoring.alarms import alarm_definitions
from harness.monitoring.dashboards import FUNCTIONS, dashboard_bodies
from harness.monitoring.deploy import clients
from harness.monitoring.evidence import FACT, dashboards_evidence, metrics_evidence
from harness.thresholds import load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

SAMPLE_INTERVAL_S = 1.0
# A bound on the child whatever happens to Locust: a day of load is longer than any run here.
MAX_RUN_S = 24 * 3600.0
STOP_TIMEOUT_S = 15.0


class RunPublisher:
    """Started when the load starts, stopped (by `facts()`) when Locust quits."""

    def __init__(self, stack: StackEndpoints) -> None:
        self.stack = stack
        self.started: float | None = None
        self.pid: int | None = None
        self.report = Path(tempfile.mkstemp(prefix="harness-cloudwatch-", suffix=".txt")[1])

    def start(self) -> None:
        if self.started is not None:
            return
        self.started = time.time()
        # The child resolves the same settings (HARNESS_* environment, harness.toml) and so finds the same stack.
        argv = [sys.executable, "-m", "harness.locustusers.cloudwatch", str(os.getpid()), str(self.report)]
        self.pid = os.posix_spawn(sys.executable, argv, dict(os.environ))

    def stop(self) -> str:
        """Stops the child by PID; what it reported (failures), empty when every publish went out."""
        if self.pid is None:
            self.report.unlink(missing_ok=True)
            return ""
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.1)
        self.pid = None
        text = self.report.read_text().strip()
        self.report.unlink(missing_ok=True)
        return text

    def facts(self) -> dict[str, Any]:
        """Stops the publishing; the run facts under `cloudwatch` (empty when the load never started)."""
        failures = self.stop()
        if self.started is None:
            return {}
        cloudwatch, _ = clients(self.stack.aws)
        end = time.time()
        alarms = alarm_definitions(
            load_thresholds(DEFAULT_THRESHOLDS_FILE),
            db_instance_class=self.stack.facts.get("postgres", {}).get("instance_class", "db.t3.micro"),
        )
        bodies = dashboard_bodies(alarms, self.stack.aws.region)
        found: dict[str, Any] = {
            "metrics": metrics_evidence(cloudwatch, self.started, end, FUNCTIONS),
            "dashboards": dashboards_evidence(cloudwatch, bodies, self.started, end),
        }
        if failures:
            found["publish_failures"] = failures[-2000:]
        return {FACT: found}


def _publish_until_stopped(parent: int, report: Path) -> int:
    # First, before the slow imports: a stop during start-up still publishes one sample (the sampler's last tick).
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from harness.backends import get_backend
    from harness.config import resolve_settings
    from harness.measure.sampling import ResourceSampler
    from harness.monitoring.publish import AwsMetricPublisher

    stack = get_backend(resolve_settings()).endpoints()
    if stack is None:
        report.write_text("no running stack: nothing published\n")
        return 1
    publisher = AwsMetricPublisher(stack)
    deadline = time.monotonic() + MAX_RUN_S
    with ResourceSampler(stack, interval_s=SAMPLE_INTERVAL_S, on_sample=publisher).running():
        # Locust gone (the child was re-parented) or the bound reached: stop all the same.
        while not stop.wait(1.0) and os.getppid() == parent and time.monotonic() < deadline:
            pass
    report.write_text("".join(f"{failure}\n" for failure in publisher.failures))
    return 0


if __name__ == "__main__":
    sys.exit(_publish_until_stopped(int(sys.argv[1]), Path(sys.argv[2])))
