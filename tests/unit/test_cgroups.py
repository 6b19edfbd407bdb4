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
