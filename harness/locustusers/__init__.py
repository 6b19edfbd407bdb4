"""Locust load for the Database Unit: Users for its services, workloads, load shapes and a CI gate.

    users.py      abstract Users with timed clients: PostgresUser (psycopg_pool), RedisUser, LambdaUser
    workloads.py  VectorSearchUser, CacheUser, GdprUser: the unit's workloads, for locustfiles to subclass
    plugin.py     options, shapes, per-request tally, worker -> master merge, results and exit code
    run.py        one process's stack endpoints, shared clients and workload data
    tally.py      exact measurements (HDR histograms, rates, counts) and their merge across processes
    shapes.py     ramp, spike and soak as stages
    gate.py       which thresholds judge a Locust run, and its exit code

Only users.py, workloads.py and plugin.py import Locust (which monkey-patches the process with gevent);
the other modules are plain Python, importable anywhere.
"""
