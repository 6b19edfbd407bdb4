"""The cheapest request of each service, back to back: how many requests a second Locust itself can drive,
for benchmarks/locust_bench.py to set against redis-benchmark, pgbench and a plain client loop.

    locust -f locustfiles/throughput.py --headless -u 20 -t 10s RedisGet
    locust -f locustfiles/throughput.py --headless -u 20 -t 10s --processes 2 PointSelect
"""

from locust import constant, task

from harness.locustusers.users import PostgresUser, RedisUser

BENCH_KEY = "bench:locust:value"
POINT_SELECT_SQL = "SELECT user_id, tenant_id FROM users WHERE user_id = %s"


class RedisGet(RedisUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.harness.redis().set(BENCH_KEY, b"x" * 3, ex=600)

    @task
    def get(self) -> None:
        self.redis.get(BENCH_KEY)


class PointSelect(PostgresUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.ids = self.harness.population()[0]
        self.next = 0

    @task
    def select(self) -> None:
        self.next = (self.next + 1) % len(self.ids)
        self.pg.execute("point select", POINT_SELECT_SQL, (int(self.ids[self.next]),))
