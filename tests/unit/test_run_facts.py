from harness.measure.run_facts import run_facts


def test_report_facts_name_versions_sizing_and_caps(make_endpoints):
    stack = make_endpoints(
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


def test_a_stack_that_reports_nothing_gives_empty_sections_not_nones(make_endpoints):
    facts = run_facts(make_endpoints(facts={}))
    assert facts["versions"] == {} and facts["sizing"] == {} and facts["cgroups"] == {}
