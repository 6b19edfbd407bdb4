"""Turn a run's results into a report people read and CI gates on.

outcome = render_report(Path("results.json"), Path("reports/2025-11-25T17-00"), thresholds)
print(format_verdict_table(outcome.evaluation)); sys.exit(outcome.exit_code)
print(compare_paths(Path("reports/A"), Path("reports/B")))
"""

from harness.report.compare import Change, compare_judged, compare_paths, compare_runs, format_comparison, load_judged
from harness.report.render import ReportOutcome, render_report
from harness.report.text import format_verdict_table

__all__ = [
    "Change",
    "ReportOutcome",
    "compare_judged",
    "compare_paths",
    "compare_runs",
    "format_comparison",
    "format_verdict_table",
    "load_judged",
    "render_report",
]
