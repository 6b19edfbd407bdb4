"""Where a sign-off's time went, and how sure its judged figures are: the per-step wall times, the run's
phases, the total with and without the drills, the machine's load, and every judged percentile or rate
with its sample size and 95 % interval, from a report directory `harness signoff` wrote. Two
directories: the same tables side by side (before, after).

The sign-off's time goal (issue 14) excludes the drills (test_drills.py, test_alarm_drills.py) and the
drained pass: "without drills" is the phases before the scenarios plus every other step.

    .venv/bin/python benchmarks/signoff_steps.py reports/20261129-141041 [reports/20261129-150102]

With --plan, a report's step times as its size's section of scenarios/step_plan.yaml (what a first run's
estimate of time left expects), to paste there after a sign-off on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _load(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    report = json.loads((directory / "report.json").read_text())
    return report, report["run"]


DRILL_FILES = ("test_drills.py", "test_alarm_drills.py")


def _step_name(nodeid: str) -> str:
    return nodeid.split("/")[-1].replace("test_", "", 1)


def _without_drills(run: dict[str, Any]) -> str:
    steps = run.get("steps", [])
    phases = run.get("phases_s", {})
    if not steps or "stack_and_seed" not in phases:
        return "-"
    kept = sum(s["seconds"] for s in steps if not any(f"{f}::" in s["step"] for f in DRILL_FILES))
    return f"{phases['stack_and_seed'] + phases.get('checklist_probes', 0) + kept:.1f}"


def _plan(run: dict[str, Any]) -> str:
    """The run's steps keyed as scenarios/conftest.py's plan_key names them: file::test, whatever the path."""
    lines = [f"{run['scenario_size']}:"]
    for step in run.get("steps", []):
        path, _, test = step["step"].partition("::")
        # The plan ignores a step at 0 s (as if unplanned): the quickest checks are planned at 0.01 s.
        lines.append(f"  {json.dumps(Path(path).name + '::' + test)}: {max(step['seconds'], 0.01)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", type=Path, nargs="+", help="one or two report directories")
    parser.add_argument("--plan", action="store_true", help="print the step times as scenarios/step_plan.yaml")
    args = parser.parse_args(argv)
    loaded = []
    for directory in args.reports:
        try:
            loaded.append(_load(directory))
        except (OSError, KeyError, ValueError) as exc:
            print(f"{directory}: not a sign-off report ({exc})", file=sys.stderr)
            return 2
    if args.plan:
        for _, run in loaded:
            print(_plan(run))
        return 0
    names = [d.name for d in args.reports]
    print(
        "phases (s): "
        + " | ".join(f"{n}: {json.dumps(run.get('phases_s', {}))}" for n, (_, run) in zip(names, loaded, strict=True))
    )
    print(
        "total (s):  " + " | ".join(f"{n}: {run.get('duration_s')}" for n, (_, run) in zip(names, loaded, strict=True))
    )
    print(
        "without drills (s): "
        + " | ".join(f"{n}: {_without_drills(run)}" for n, (_, run) in zip(names, loaded, strict=True))
    )
    print(
        "size, load average (1/5/15 min) at the scenarios' start and end: "
        + " | ".join(
            f"{n}: {run.get('scenario_size')}, {run.get('load_average', {}).get('start')} -> "
            f"{run.get('load_average', {}).get('end')}"
            for n, (_, run) in zip(names, loaded, strict=True)
        )
    )
    steps: dict[str, list[str]] = {}
    for i, (_, run) in enumerate(loaded):
        for step in run.get("steps", []):
            steps.setdefault(_step_name(step["step"]), ["-"] * len(loaded))[i] = f"{step['seconds']:.1f}"
    width = max((len(s) for s in steps), default=10)
    print(f"\n{'step'.ljust(width)}  " + "  ".join(n.rjust(16) for n in names))
    for step, seconds in steps.items():
        print(f"{step.ljust(width)}  " + "  ".join(s.rjust(16) for s in seconds))
    print(
        f"{'sum of steps'.ljust(width)}  "
        + "  ".join(str(run.get("steps_total_s", "-")).rjust(16) for _, run in loaded)
    )
    for name, (report, _) in zip(names, loaded, strict=True):
        print(f"\n{name}: verdict {report['verdict']}; judged percentiles and rates")
        for t in report["thresholds"]:
            if t.get("interval_95") is None:
                continue
            low, high = t["interval_95"]
            verdict = "conclusive" if t["conclusive"] else "NOT CONCLUSIVE"
            print(
                f"  {t['id']:<40} {t['statistic']:>5} = {t['measured']:.4g} {t['unit']:<5} N={t['sample_size']:>7,} "
                f"95% [{low:.4g}, {high:.4g}]  {t['status']} {verdict}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
