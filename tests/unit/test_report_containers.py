"""A compose sign-off's report names the images and the limits each container's kernel held, right after the
backend; an embedded one shows what it always showed."""

from harness.report.text import flatten_facts, missing_facts

EMBEDDED = {"harness_version": "0.1.0", "backend": "embedded", "versions": {"postgres": "18.6"}}
COMPOSE = {
    **EMBEDDED,
    "backend": "compose",
    "images": {"postgres": "dbunit-harness/postgres:18.6.3", "redis": "dbunit-harness/redis:bookworm"},
    "containers": {
        "postgres": {
            "image_id": "sha256:3e23d999bbf848b77414e12e",
            "engine_memory_bytes": 2**30,
            "engine_vcpus": 2.0,
            "cgroup": "v1",
            "memory_bytes": 2**30,
            "vcpus": 2.0,
        },
        "redis": {
            "engine_memory_bytes": None,
            "engine_vcpus": None,
            "cgroup": "v2",
            "memory_bytes": None,
            "vcpus": None,
        },
    },
}


def test_the_compose_images_and_held_limits_follow_the_backend():
    keys = [key for key, _ in flatten_facts(COMPOSE)]
    assert keys[:7] == [
        "harness_version",
        "backend",
        "images.postgres",
        "images.redis",
        "containers.postgres",
        "containers.redis",
        "versions.postgres",
    ]
    rows = dict(flatten_facts(COMPOSE))
    assert rows["containers.postgres"] == (
        "kernel (v1): 1024 MiB, 2 vCPU; engine: 1024 MiB, 2 vCPU; image 3e23d999bbf8"
    )
    assert (
        rows["containers.redis"] == "kernel (v2): no memory limit, no CPU limit; engine: no memory limit, no CPU limit"
    )
    assert rows["images.postgres"] == "dbunit-harness/postgres:18.6.3"


def test_an_embedded_report_is_not_said_to_lack_images_or_containers():
    assert not any(key.startswith(("images", "containers")) for key, _ in flatten_facts(EMBEDDED))
    assert "images" not in missing_facts(EMBEDDED) and "containers" not in missing_facts(EMBEDDED)
