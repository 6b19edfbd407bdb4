"""The HTML report from the recorded sample run, opened in a real headless Chromium (Debian's `chromium`).

Needs no stack: it proves the report file renders in a browser with no console errors and produces a
screenshot with the tables and the charts' threshold lines in it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from harness.report import render_report
from harness.report.charts import CRITICAL_COLOUR, WARNING_COLOUR
from harness.thresholds import load_thresholds

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "sample-results.json"
DEFAULTS = ROOT / "fixtures" / "thresholds.yaml"
WIDTH, HEIGHT = 1280, 9000

pytestmark = pytest.mark.integration


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "no chromium binary on PATH; install it with `apt-get install -y chromium` (see .ci/apt-packages-report.txt)"
    )


def _pixels_near(picture: np.ndarray, colour: str, tolerance: float = 0.08) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(picture[:, :, :3] - rgb) < tolerance).all(axis=2).sum())


def test_report_renders_in_chromium_without_console_errors(tmp_path: Path) -> None:
    browser = _chromium()
    outcome = render_report(SAMPLE, tmp_path / "report", load_thresholds(DEFAULTS))
    screenshot = tmp_path / "report.png"
    completed = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={screenshot}",
            outcome.files["report.html"].as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # Chromium logs every console message (errors, uncaught exceptions, warnings) as a CONSOLE line;
    # the report has no scripts, so any such line is a defect.
    console = [line for line in completed.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []

    assert screenshot.stat().st_size > 100_000
    picture = image.imread(screenshot)
    assert picture.shape[:2] == (HEIGHT, WIDTH)
    ink = (picture[:, :, :3] < 0.9).any(axis=2)
    assert ink.mean() > 0.03, "the page is nearly blank"
    # Drawn rows reach far down the page: the charts below the tables rendered.
    assert np.nonzero(ink.any(axis=1))[0].max() > HEIGHT // 2
    # Threshold lines (and FAIL/WARN rows) are drawn in these colours; thousands of pixels of each.
    assert _pixels_near(picture, CRITICAL_COLOUR) > 2_000
    assert _pixels_near(picture, WARNING_COLOUR) > 2_000
