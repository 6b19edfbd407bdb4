"""GDPR requests through the Lambda functions at a realistic mix (GDPR_TASK_MIX, 20:3:1): the application
writes audit batches all the time, users ask for their data now and then, and deletions are rarer still.

    locust -f locustfiles/gdpr_lambdas.py --headless -u 5 -t 1m
    locust -f locustfiles/gdpr_lambdas.py --headless --shape spike -u 4 --spike-users 30 -t 1m

Each user keeps one invocation in flight, so users = concurrent executions: past the Lambda concurrency
limit (10 on the local runtime) invocations are throttled, counted in lambda.<function>.throttles.
Deletions erase clones of seeded users, never the seeded data.
"""

from locust import constant

from harness.locustusers.workloads import GDPR_TASK_MIX, GdprUser


class GdprRequests(GdprUser):
    wait_time = constant(0)
    tasks = GDPR_TASK_MIX
