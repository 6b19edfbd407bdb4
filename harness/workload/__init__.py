"""A team's query mix: the workload file, capture from pg_stat_statements, parameter generators from the seed,
open-model replay judged per statement, and what RDS Proxy would pin (a user meets it as `harness workload`)."""
