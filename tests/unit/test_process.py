import sys
import time

import pytest

from harness.services.process import (
    MissingBinaryError,
    PidFiles,
    ServiceNotReadyError,
    find_binary,
    log_tail,
    spawn,
    stop_process,
    wait_until_ready,
)


def test_missing_binary_says_how_to_install_it():
    with pytest.raises(MissingBinaryError, match=r"no-such-server-binary not found.*apt-get install x"):
        find_binary("no-such-server-binary", "Install it: apt-get install x")


def test_a_process_that_dies_during_start_up_reports_its_log(tmp_path):
    log = tmp_path / "svc.log"
    record = spawn("svc", [sys.executable, "-c", "print('FATAL: config is broken'); raise SystemExit(3)"], log)

    def probe():
        raise ConnectionRefusedError("nobody listens")

    with pytest.raises(ServiceNotReadyError, match=r"(?s)exited during start-up.*FATAL: config is broken"):
        wait_until_ready(record, probe, timeout_s=10, log_path=log, what="svc")


def test_a_probe_that_never_succeeds_hits_the_deadline_with_the_last_error(tmp_path):
    log = tmp_path / "svc.log"
    record = spawn(
        "svc", [sys.executable, "-c", "print('still starting', flush=True); import time; time.sleep(30)"], log
    )
    virtual = [0.0]
    try:
        wait_until_ready(
            record,
            lambda: "still starting" in log.read_text() or (_ for _ in ()).throw(OSError()),
            timeout_s=10,
            log_path=log,
            what="svc",
        )
        with pytest.raises(ServiceNotReadyError, match=r"(?s)within 1 s.*nobody listens.*still starting"):
            wait_until_ready(
                record,
                lambda: (_ for _ in ()).throw(OSError("nobody listens")),
                timeout_s=1,
                log_path=log,
                what="svc",
                now=lambda: virtual[0],
                sleep=lambda s: virtual.__setitem__(0, virtual[0] + s),
            )
        # Gives up at the first probe past the deadline: the pauses back off to at most half a second.
        assert 1 <= virtual[0] < 1.5
    finally:
        assert stop_process(record, timeout_s=5)
    assert not record.is_alive()


def test_stop_kills_the_whole_process_group(tmp_path):
    log = tmp_path / "tree.log"
    script = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('child started', flush=True); time.sleep(60)"
    )
    record = spawn("tree", [sys.executable, "-c", script], log)
    wait_until_ready(
        record,
        lambda: "child started" in log.read_text() or (_ for _ in ()).throw(OSError()),
        timeout_s=10,
        log_path=log,
        what="tree",
    )
    import psutil

    children = psutil.Process(record.pid).children(recursive=True)
    assert children
    # SIGTERM reaches only the parent; the grandchild outlives it unless the group is killed too.
    stop_process(record, timeout_s=0.5)
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


def test_pid_files_round_trip_and_detect_dead_processes(tmp_path):
    pids = PidFiles(tmp_path / "run")
    record = spawn("short", [sys.executable, "-c", "pass"], tmp_path / "short.log")
    pids.write(record)
    assert pids.read("short") == record
    deadline = time.monotonic() + 10
    while record.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not record.is_alive()
    assert [r.name for r in pids.all()] == ["short"]
    pids.remove("short")
    assert pids.read("short") is None


def test_log_tail_of_a_missing_log_says_so(tmp_path):
    assert "no log" in log_tail(tmp_path / "absent.log")
