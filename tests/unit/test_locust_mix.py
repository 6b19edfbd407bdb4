"""The GDPR request mix is stated once (workloads.GDPR_TASK_MIX) and every locustfile sending GDPR requests
sends exactly it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# In a child process: importing Locust patches the interpreter with gevent, which the other unit tests must not get.
COUNT_TASKS = """
import collections, importlib, json
from harness.locustusers.workloads import GDPR_TASK_MIX
mix = {task.__name__: weight for task, weight in GDPR_TASK_MIX.items()}
users = {"locustfiles.gdpr_lambdas": "GdprRequests", "locustfiles.mixed": "DataSubject"}
sent = {}
for module, user in users.items():
    tasks = getattr(importlib.import_module(module), user).tasks
    sent[module] = dict(collections.Counter(task.__name__ for task in tasks))
print(json.dumps({"mix": mix, "sent": sent}))
"""


def test_both_locustfiles_send_the_gdpr_mix_of_audit_export_deletion_20_3_1() -> None:
    done = subprocess.run(
        [sys.executable, "-c", COUNT_TASKS], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["mix"] == {"audit": 20, "export": 3, "delete": 1}
    assert found["sent"] == {"locustfiles.gdpr_lambdas": found["mix"], "locustfiles.mixed": found["mix"]}
