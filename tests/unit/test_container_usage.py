"""A container's accounting read from cgroup files laid out as the engine's host lays them out (v1 and v2)."""

from pathlib import Path

import pytest

from harness.services.containers import ContainerUnreadable, ContainerUsage, parse_proc_cgroup

CONTAINER = "docker/0123abcd"
V1_PROC = (
    "9:name=systemd:/docker/0123abcd\n4:memory:/docker/0123abcd\n2:cpuacct:/docker/0123abcd\n"
    "1:cpu:/docker/0123abcd\n0::/docker/0123abcd\n"
)


def write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def test_a_v1_container_reports_cumulative_cpu_memory_less_inactive_cache_and_its_limits(tmp_path):
    write(tmp_path / "cpuacct" / CONTAINER, {"cpuacct.usage": "2500000000\n"})
    write(tmp_path / "cpu" / CONTAINER, {"cpu.cfs_quota_us": "200000\n", "cpu.cfs_period_us": "100000\n"})
    write(
        tmp_path / "memory" / CONTAINER,
        {
            "memory.usage_in_bytes": "1000\n",
            "memory.stat": "cache 600\ninactive_file 50\ntotal_inactive_file 400\n",
            "memory.limit_in_bytes": "1073741824\n",
        },
    )
    version, dirs = parse_proc_cgroup(V1_PROC, tmp_path, "postgres")
    usage = ContainerUsage("postgres", "0123abcd", version, dirs)
    assert version == "v1"
    assert usage.cpu_seconds() == 2.5
    assert usage.memory_bytes() == 600.0
    assert usage.memory_limit_bytes() == 1073741824.0
    assert usage.vcpus() == 2.0


def test_a_v1_container_without_limits_says_unlimited(tmp_path):
    write(tmp_path / "cpu" / CONTAINER, {"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"})
    write(tmp_path / "memory" / CONTAINER, {"memory.limit_in_bytes": "9223372036854771712\n"})
    write(tmp_path / "cpuacct" / CONTAINER, {})
    usage = ContainerUsage("redis", "0123abcd", *parse_proc_cgroup(V1_PROC, tmp_path, "redis"))
    assert usage.vcpus() is None
    assert usage.memory_limit_bytes() is None


def test_a_v2_container_is_read_from_its_one_directory(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory io\n")
    write(
        tmp_path / "system.slice" / "docker-0123abcd.scope",
        {
            "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\n",
            "cpu.max": "50000 100000\n",
            "memory.current": "4096\n",
            "memory.stat": "anon 1024\ninactive_file 1024\n",
            "memory.max": "max\n",
        },
    )
    version, dirs = parse_proc_cgroup("0::/system.slice/docker-0123abcd.scope\n", tmp_path, "redis")
    usage = ContainerUsage("redis", "0123abcd", version, dirs)
    assert version == "v2"
    assert usage.cpu_seconds() == 1.5
    assert usage.memory_bytes() == 3072.0
    assert usage.memory_limit_bytes() is None
    assert usage.vcpus() == 0.5


def test_a_container_gone_from_under_the_sampler_is_a_clear_error(tmp_path):
    usage = ContainerUsage("postgres", "0123abcd", "v2", {"unified": tmp_path / "gone"})
    with pytest.raises(ContainerUnreadable, match=r"cannot read .*cpu\.stat"):
        usage.cpu_seconds()


def test_a_process_in_no_usable_group_is_refused(tmp_path):
    with pytest.raises(ContainerUnreadable, match="postgres is in no cgroup"):
        parse_proc_cgroup("0::/docker/0123abcd\n", tmp_path, "postgres")
