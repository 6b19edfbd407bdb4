import io
import threading

from harness.progress import Progress, transfer_callback


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


def test_a_transfer_callback_adds_up_bytes_from_several_threads_in_mib():
    progress = Progress("download", total=64, unit="MiB", stream=io.StringIO())
    advance = transfer_callback(progress)
    threads = [threading.Thread(target=lambda: [advance(2**16) for _ in range(256)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert progress.done == 64
