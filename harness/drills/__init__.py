"""Failure drills: the document's emergency procedures (database, cache, proxy failure) and the promise that
a restart loses nothing, run against the embedded stack with measured recovery times and lost writes.

A user meets this as `harness drill NAME` and as scenarios/test_drills.py; every drill refuses to run on an
external deployment unless destructive runs are allowed, and stops what it started by PID, also on failure.
"""
