"""The harness as a team installs it: the wheel built from this checkout, installed into a fresh virtual
environment outside it, driven by a non-root user in an empty directory (`harness init`, `up`, `signoff
--size ci`, `down`). Nothing of the checkout is on the path: the working directory is elsewhere, PYTHONPATH is
unset, and the package imported is the new environment's. The run ends with a verdict whose report and
results name the installed version.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT

pytestmark = pytest.mark.integration

# The account the installed harness runs as when the tests run as root.
TEST_USER = "dbunit-wheel"
# 0 PASS, 3 WARN, 4 FAIL: each is a verdict; 1 (the stack) and 5 (BROKEN) are not endings of a working install.
VERDICTS = (0, 3, 4)


def _run(args: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)


def _user() -> pwd.struct_passwd:
    """This process's account when it is not root; otherwise an unprivileged account, made if missing."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pass
    made = _run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER], timeout=60)
    if made.returncode != 0:
        pytest.skip(f"running as root and cannot create a non-root user {TEST_USER}: {made.stderr.strip()}")
    return pwd.getpwnam(TEST_USER)


@pytest.fixture
def scratch() -> Iterator[Path]:
    # Outside the checkout and pytest's basetemp; readable by the test user (mkdtemp makes it private).
    root = Path(tempfile.mkdtemp(prefix="dbunit-wheel-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_built_wheel_installed_elsewhere_inits_signs_off_and_names_its_version(scratch, free_port_numbers):
    user = _user()
    timings: dict[str, float] = {}

    began = time.monotonic()
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(scratch / "dist"), str(REPO_ROOT)],
        timeout=600,
        cwd=scratch,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (scratch / "dist").glob("dbunit_harness-*.whl")
    version = wheel.name.split("-")[1]
    timings["build"] = time.monotonic() - began

    began = time.monotonic()
    venv = scratch / "venv"
    created = _run([sys.executable, "-m", "venv", str(venv)], timeout=300, cwd=scratch)
    assert created.returncode == 0, created.stderr[-3000:]
    installed = _run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], timeout=1200, cwd=scratch)
    assert installed.returncode == 0, installed.stderr[-3000:]
    timings["install"] = time.monotonic() - began

    work = scratch / "team"
    work.mkdir()
    os.chown(work, user.pw_uid, user.pw_gid)
    ports = dict(
        zip(("POSTGRES", "PROXY", "REDIS", "AWS", "LAMBDA"), (str(p) for p in free_port_numbers(5)), strict=True)
    )
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(work),
        "LANG": "C.UTF-8",
        **{f"HARNESS_{name}_PORT": port for name, port in ports.items()},
    }
    # As the user when the tests run as root; `env -i` so nothing of this process's environment (PYTHONPATH,
    # HARNESS_STATE_DIR, the checkout's venv) reaches the installed harness.
    prefix = ["runuser", "-u", user.pw_name, "--"] if os.geteuid() == 0 else []

    def as_user(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        command = [*prefix, "env", "-i", *(f"{k}={v}" for k, v in env.items()), *args]
        return _run(command, timeout=timeout, cwd=work)

    where = as_user("python", "-c", "import harness, sys; print(harness.__file__); print(sys.path)")
    assert where.returncode == 0, where.stderr[-3000:]
    module_file, path = where.stdout.splitlines()
    assert Path(module_file).is_relative_to(venv), module_file
    assert str(REPO_ROOT) not in path
    assert as_user("harness", "--version").stdout.strip() == f"harness {version}"

    init = as_user("harness", "init")
    assert init.returncode == 0, init.stderr
    assert (work / "harness.toml").is_file() and (work / ".github" / "workflows" / "dbunit-signoff.yml").is_file()

    try:
        began = time.monotonic()
        up = as_user("harness", "up", timeout=300)
        assert up.returncode == 0, up.stderr[-3000:]
        timings["up"] = time.monotonic() - began

        began = time.monotonic()
        signoff = as_user("harness", "signoff", "--size", "ci", "--thresholds", "thresholds.yaml", timeout=1500)
        timings["signoff"] = time.monotonic() - began
        assert signoff.returncode in VERDICTS, (signoff.returncode, signoff.stderr[-5000:])
        assert "_bundled/scenarios" in signoff.stderr
    finally:
        down = as_user("harness", "down", timeout=300)
    assert down.returncode == 0, down.stderr[-3000:]

    (report_dir,) = (work / "reports").iterdir()
    assert f"dbunit-harness {version}" in (report_dir / "report.html").read_text()
    results = json.loads((report_dir / "results.json").read_text())
    assert results["run"]["harness_version"] == version
    # The state and reports belong to the user who ran it, in the directory it ran in.
    assert (work / ".harness").stat().st_uid == user.pw_uid
    steps = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in timings.items())
    print(f"installed-wheel run: {steps}; sign-off exit {signoff.returncode}")
