import io

from harness.measure.progress import Progress


def test_progress_reports_count_percentage_and_rate_when_it_ends():
    out = io.StringIO()
    with Progress("load documents", 200, stream=out) as bar:
        bar.advance(150)
        bar.advance(50)
    line = out.getvalue().strip().splitlines()[-1]
    assert line.startswith("load documents: 200/200 rows 100.0% ")
    assert "rows/s" in line


def test_disabled_progress_prints_nothing():
    out = io.StringIO()
    with Progress("x", 10, enabled=False, stream=out) as bar:
        bar.advance(10)
    assert out.getvalue() == ""
