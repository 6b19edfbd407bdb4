from dataclasses import replace

from harness.endpoints import AwsEndpoint, AwsResources, PostgresEndpoint, RedisEndpoint, Secret, StackEndpoints
from harness.measure.run_facts import run_facts


def sample() -> StackEndpoints:
    pg = PostgresEndpoint("127.0.0.1", 15432, "admin", Secret("pw"), "dbunit")
    return StackEndpoints(
        backend="embedded",
        proxy=pg,
        direct=pg,
        redis=RedisEndpoint("127.0.0.1", 16379, Secret("pw")),
        aws=AwsEndpoint("http://127.0.0.1:14566", "us-east-2", "test", Secret("test")),
        resources=AwsResources("bucket", "secret"),
    )


def test_report_facts_name_versions_sizing_and_caps():
    stack = replace(
        sample(),
        facts={
            "postgres": {
                "version": "18.6",
                "pgvector_version": "0.8.6",
                "instance_class": "db.t3.micro",
                "max_connections": 112,
            },
            "redis": {"version": "7.0.15", "node_type": "cache.t3.micro", "maxmemory": 402653184},
            "cgroup": {"enforced": False, "detail": "no cgroup filesystem"},
        },
    )
    facts = run_facts(stack)
    assert facts["backend"] == "embedded"
    assert facts["versions"] == {"postgres": "18.6", "pgvector": "0.8.6", "redis": "7.0.15"}
    assert facts["sizing"]["max_connections"] == 112
    assert facts["cgroups"]["postgres"]["enforced"] is False
    assert "cores" in facts["machine"]


def test_a_stack_that_reports_nothing_gives_empty_sections_not_nones():
    facts = run_facts(replace(sample(), facts={}))
    assert facts["versions"] == {} and facts["sizing"] == {} and facts["cgroups"] == {}
