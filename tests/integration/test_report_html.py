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
FIRST_SCREEN = 900
# The colours harness/report/html.py gives each checklist status and the verdict badge.
STATUS_COLOURS = {"PASS": "#2e7d32", "FAIL": "#b3261e", "NOT EMULATED": "#00838f", "NOT CHECKED YET": "#37474f"}
ERROR_BADGE = "#6a1b9a"
WARN_ROW_BACKGROUND = "#fff6e5"

pytestmark = pytest.mark.integration


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "no chromium binary on PATH; install it with `apt-get install -y chromium` (listed in .ci/apt-packages.txt)"
    )


def _pixels_near(picture: np.ndarray, colour: str, tolerance: float = 0.08) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(picture[:, :, :3] - rgb) < tolerance).all(axis=2).sum())


def _screenshot(
    browser: str, page: Path, screenshot: Path, profile: Path, height: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
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
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={WIDTH},{height}",
            f"--screenshot={screenshot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_renders_in_chromium_without_console_errors(tmp_path: Path) -> None:
    browser = _chromium()
    outcome = render_report(SAMPLE, tmp_path / "report", load_thresholds(DEFAULTS))
    screenshot = tmp_path / "report.png"
    completed = _screenshot(browser, outcome.files["report.html"], screenshot, tmp_path / "profile", HEIGHT)
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


def _rows_with(picture: np.ndarray, colour: str, tolerance: float = 0.04) -> np.ndarray:
    rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return np.nonzero((np.abs(picture[:, :, :3] - rgb) < tolerance).all(axis=2).any(axis=1))[0]


def test_the_first_screen_shows_the_verdict_and_the_whole_checklist(tmp_path: Path) -> None:
    """A laptop's first screen (1280 x 900): the verdict badge at the top, and every checklist status badge
    (each status has its own colour) above the fold, none further down the full page."""
    browser = _chromium()
    outcome = render_report(SAMPLE, tmp_path / "report", load_thresholds(DEFAULTS))
    first = tmp_path / "first.png"
    completed = _screenshot(browser, outcome.files["report.html"], first, tmp_path / "profile1", FIRST_SCREEN)
    assert completed.returncode == 0, completed.stderr[-3000:]
    picture = image.imread(first)
    assert picture.shape[:2] == (FIRST_SCREEN, WIDTH)
    # The sample run is broken (a metric never measured): its verdict badge is the ERROR colour, near the top.
    verdict_rows = _rows_with(picture, ERROR_BADGE)
    assert verdict_rows.size and verdict_rows.max() < 150
    counts = {status: sum(r.result.status.value == status for r in outcome.checklist) for status in STATUS_COLOURS}
    assert counts["NOT EMULATED"] and counts["NOT CHECKED YET"] and counts["FAIL"]
    for status, colour in STATUS_COLOURS.items():
        if counts[status]:
            assert _rows_with(picture, colour).size > 0, f"no {status} badge on the first screen"

    # The full page: the checklist's own colours appear nowhere below the first screen, so it ends there.
    full = tmp_path / "full.png"
    completed = _screenshot(browser, outcome.files["report.html"], full, tmp_path / "profile2", HEIGHT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    page = image.imread(full)
    for status in ("NOT EMULATED", "NOT CHECKED YET"):
        rows = _rows_with(page, STATUS_COLOURS[status])
        assert rows.size and rows.max() < FIRST_SCREEN, f"{status} badges reach row {rows.max()}"
    # The thresholds table's WARN rows (their own background) come after the checklist.
    warn_rows = _rows_with(page, WARN_ROW_BACKGROUND, tolerance=0.01)
    assert warn_rows.size and warn_rows.min() > _rows_with(page, STATUS_COLOURS["NOT CHECKED YET"]).max()
