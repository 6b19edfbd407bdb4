"""Nothing is left running after a drill or a restore, also when it fails half-way: restored instances are
stopped by PID, the proxy points back at the unit's own instance, and `harness down` stops restores too."""

import psutil
import pytest

from harness.backends import get_backend
from harness.backup.restore import restores_root, running_restores
from harness.backup.unit import backup_target, restore_spec
from harness.drills import database

pytestmark = pytest.mark.integration


def restored_processes(root: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if root in " ".join(p.info["cmdline"] or [])]


def test_a_database_drill_that_fails_half_way_stops_its_restore_and_points_the_proxy_back(
    stack, harness_settings, monkeypatch
):
    if stack.backend != "embedded":
        pytest.skip("drills need the embedded stack")

    def broken_validation(*args, **kwargs):
        raise RuntimeError("validation blew up half-way")

    monkeypatch.setattr(database, "validate", broken_validation)
    backend = get_backend(harness_settings)
    with pytest.raises(RuntimeError, match="half-way"):
        database.run(
            backend,
            stack,
            backup_target(harness_settings, stack),
            restore_spec(harness_settings, stack),
            harness_settings.state_dir / "pgbouncer",
            report=lambda _: None,
        )
    assert running_restores(harness_settings.state_dir) == []
    assert backend.status().healthy
    with stack.proxy.connect(autocommit=True, connect_timeout=10) as conn:
        assert conn.execute("SELECT inet_server_port()").fetchone()[0] == stack.direct.port


def test_harness_down_stops_a_restored_instance_by_pid(isolated_stack):
    up = isolated_stack.harness("up", timeout=180)
    assert up.returncode == 0, up.stderr
    created = isolated_stack.harness("backup", "create", timeout=300)
    assert created.returncode == 0, created.stderr
    restored = isolated_stack.harness("backup", "restore", "--latest", timeout=300)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "running at" in restored.stdout
    root = str(restores_root(isolated_stack.state_dir))
    assert restored_processes(root)
    down = isolated_stack.harness("down", timeout=120)
    assert down.returncode == 0, down.stderr
    assert "restored instance" in down.stderr
    assert restored_processes(root) == []
    assert isolated_stack.processes_mentioning_state() == []
