"""A day in the life of the unit: mostly cached reads, some vector searches, a trickle of GDPR requests.

    locust -f locustfiles/mixed.py --headless -u 20 -t 5m --shape soak

Users think between requests, as people behind an application do; the user classes' weights set the mix
(of 20 users: 12 cache readers, 6 searchers, 2 sending GDPR requests).
"""

from locust import between, task

from harness.locustusers.workloads import GDPR_TASK_MIX, CacheUser, GdprUser, VectorSearchUser


class Reader(CacheUser):
    weight = 6
    wait_time = between(0.05, 0.25)

    @task(3)
    def profile(self) -> None:
        self.read_profile()

    @task(1)
    def search_results(self) -> None:
        self.read_search()


class Searcher(VectorSearchUser):
    weight = 3
    wait_time = between(0.1, 0.5)

    @task
    def top_10(self) -> None:
        self.search()


class DataSubject(GdprUser):
    weight = 1
    wait_time = between(1, 3)
    tasks = GDPR_TASK_MIX
