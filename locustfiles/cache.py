"""Cache-aside reads of the application (profiles and search results) under Zipf key popularity.

    locust -f locustfiles/cache.py --headless -u 8 -t 1m --zipf-s 1.2

Judged by cache.hit_rate_pct (the seed document's 70 % / 50 %) and locust.failure_rate_pct. The cache
starts as Redis holds it: run long enough for the hit rate to settle, or it reads low.
"""

from locust import constant, task

from harness.locustusers.workloads import CacheUser


class CacheReads(CacheUser):
    wait_time = constant(0)

    @task(1)
    def profile(self) -> None:
        self.read_profile()

    @task(1)
    def search(self) -> None:
        self.read_search()
