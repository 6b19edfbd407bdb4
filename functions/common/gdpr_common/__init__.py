"""Code shared by the three GDPR functions; `harness deploy` copies this package into each zip.

validation: input checks (pure). schema: which tables hold a user's data. resources: the proxy
connection, Redis and AWS clients, created once per execution environment and reused while it is
warm. logs: one JSON object per log line.
"""
