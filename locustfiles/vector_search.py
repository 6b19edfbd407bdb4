"""Top-10 vector search through the proxy, each user a client sending queries back to back.

    locust -f locustfiles/vector_search.py                       # web UI on :8089, against `harness up`
    locust -f locustfiles/vector_search.py --headless -u 8 -t 30s --ef-search 80
    locust -f locustfiles/vector_search.py --headless --shape ramp -u 16 -t 2m

Judged by vector_search.latency_ms (p95), vector_search.recall_at_10 and locust.failure_rate_pct; the exit
code is the verdict (0 pass, 3 warn, 4 fail, 5 broken).
"""

from locust import constant, task

from harness.locustusers.workloads import VectorSearchUser


class VectorSearch(VectorSearchUser):
    wait_time = constant(0)

    @task
    def top_10(self) -> None:
        self.search()
