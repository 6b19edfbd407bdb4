from pathlib import Path

import pytest

from harness.services.cgroups import CgroupLimiter


def fake_v1(root: Path) -> None:
    (root / "memory").mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")


def test_v1_limits_are_written_where_the_kernel_reads_them(tmp_path):
    fake_v1(tmp_path)
    limiter = CgroupLimiter("dbunit-test", root=tmp_path)
    status, join = limiter.apply(memory_bytes=2**30, vcpus=2)
    assert status.enforced and status.version == "v1"
    assert (tmp_path / "memory" / "dbunit-test" / "memory.limit_in_bytes").read_text() == str(2**30)
    assert (tmp_path / "cpu" / "dbunit-test" / "cpu.cfs_quota_us").read_text() == "200000"
    assert (tmp_path / "cpu" / "dbunit-test" / "cpu.cfs_period_us").read_text() == "100000"
    assert join is not None


def test_v2_limits(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    limiter = CgroupLimiter("dbunit-test", root=tmp_path)
    status, _ = limiter.apply(memory_bytes=2**30, vcpus=0.5)
    assert status.enforced and status.version == "v2"
    assert (tmp_path / "dbunit-test" / "memory.max").read_text() == str(2**30)
    assert (tmp_path / "dbunit-test" / "cpu.max").read_text() == "50000 100000"
    assert "+memory" in (tmp_path / "cgroup.subtree_control").read_text()


def test_v2_without_controllers_is_reported_not_enforced(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("pids\n")
    status, join = CgroupLimiter("x", root=tmp_path).apply(2**30, 2)
    assert not status.enforced and join is None
    assert "lacks the memory/cpu controllers" in status.reason


def test_no_cgroup_filesystem(tmp_path):
    status, join = CgroupLimiter("x", root=tmp_path).apply(2**30, 2)
    assert not status.enforced and join is None
    assert "no cgroup filesystem" in status.reason


def test_remove_deletes_the_group_directories(tmp_path):
    fake_v1(tmp_path)
    limiter = CgroupLimiter("dbunit-test", root=tmp_path)
    limiter.apply(2**30, 2)
    for leaf in ("memory", "cpu"):
        for child in (tmp_path / leaf / "dbunit-test").iterdir():
            child.unlink()  # a real cgroupfs has no regular files to delete
    limiter.remove()
    assert not (tmp_path / "memory" / "dbunit-test").exists()


@pytest.mark.parametrize("name", ["", "a/b"])
def test_group_name_is_one_path_component(name):
    with pytest.raises(ValueError):
        CgroupLimiter(name)


def fake_blkio(root: Path) -> None:
    (root / "blkio").mkdir()
    (root / "blkio" / "blkio.throttle.read_iops_device").write_text("")


def test_a_group_on_a_writable_blkio_hierarchy_joins_it_and_caps_the_disk(tmp_path):
    fake_v1(tmp_path)
    fake_blkio(tmp_path)
    limiter = CgroupLimiter("dbunit-test", root=tmp_path)
    status, _ = limiter.apply(memory_bytes=2**29, vcpus=0.2, cpu_period_us=10_000)
    assert "blkio" in status.reason
    assert (tmp_path / "cpu" / "dbunit-test" / "cpu.cfs_quota_us").read_text() == "2000"
    assert limiter.cpu_limit() == (0.2, 10_000)
    assert limiter.set_io_limits("254:0", 100, 8_000_000) == ""
    # A fake directory keeps only the last write of each file, as the kernel keeps one rule per device.
    assert limiter.io_limits("254:0") == {
        "read_iops": 100,
        "write_iops": 100,
        "read_bps": 8_000_000,
        "write_bps": 8_000_000,
    }
    limiter.set_cpu_limit(2.0)
    assert limiter.cpu_limit() == (2.0, 10_000), "a new cap keeps the group's period"
    limiter.set_cpu_limit(None)
    assert limiter.cpu_limit() == (None, 10_000)


def test_without_blkio_the_disk_cap_says_why(tmp_path):
    fake_v1(tmp_path)
    limiter = CgroupLimiter("dbunit-test", root=tmp_path)
    limiter.apply(memory_bytes=2**30, vcpus=2)
    assert "no writable cgroup v1 blkio" in limiter.set_io_limits("254:0", 100, None)
    assert limiter.io_limits("254:0") == {}
    assert limiter.io_serviced("254:0") is None


def test_io_serviced_counts_reads_and_writes_of_one_device(tmp_path):
    fake_v1(tmp_path)
    fake_blkio(tmp_path)
    limiter = CgroupLimiter("dbunit-test", root=tmp_path)
    limiter.apply(memory_bytes=2**30, vcpus=2)
    (tmp_path / "blkio" / "dbunit-test" / "blkio.throttle.io_serviced").write_text(
        "254:0 Read 120\n254:0 Write 30\n254:0 Sync 100\n253:0 Read 999\nTotal 1249\n"
    )
    assert limiter.io_serviced("254:0") == (120, 30)


def test_the_memory_cap_can_be_raised_and_read_back_on_v1_and_v2(tmp_path):
    fake_v1(tmp_path / "v1")
    v1 = CgroupLimiter("dbunit-test", root=tmp_path / "v1")
    v1.apply(memory_bytes=2**30, vcpus=2)
    v1.set_memory_limit(4 * 2**30)
    assert v1.memory_limit() == 4 * 2**30
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cgroup.controllers").write_text("cpu memory\n")
    (tmp_path / "v2" / "cgroup.subtree_control").write_text("")
    v2 = CgroupLimiter("dbunit-test", root=tmp_path / "v2")
    v2.apply(memory_bytes=2**30, vcpus=2)
    assert v2.memory_limit() == 2**30
    (tmp_path / "v2" / "dbunit-test" / "memory.max").write_text("max\n")
    assert v2.memory_limit() is None


def test_moving_a_memory_cap_without_cgroups_says_why(tmp_path):
    with pytest.raises(OSError, match="no cgroup filesystem"):
        CgroupLimiter("x", root=tmp_path).set_memory_limit(2**30)
