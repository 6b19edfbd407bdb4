"""The CI gate of a Locust run: which thresholds it is judged by, and the exit code it ends with.

A Locust run is judged by the sign-off's thresholds (fixtures/thresholds.yaml) plus the Locust-only ones
(fixtures/thresholds-locust.yaml: the share of failed requests), restricted to the thresholds whose metric
the run *set out* to measure (see `Tally.expect`). So `locustfiles/gdpr_lambdas.py` is not marked broken
for never measuring vector search, while a vector search whose every query failed, leaving its latency
unmeasured, is an error, never a pass. A run that attempted nothing any threshold judges is an error too,
and so is a run whose user code raised (Locust's "exceptions"): the workload did not run as written.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.measure.results import RunResults
from harness.report import format_verdict_table
from harness.thresholds import (
    EXIT_CODE_MEANINGS,
    ExitCode,
    Problem,
    ThresholdConfigError,
    ThresholdResult,
    ThresholdSet,
    apply_override_text,
    apply_sets,
    evaluate,
    exit_code,
    load_thresholds,
)
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

LOCUST_THRESHOLDS_FILE = DEFAULT_THRESHOLDS_FILE.with_name("thresholds-locust.yaml")
DEFAULT_THRESHOLD_FILES = (DEFAULT_THRESHOLDS_FILE, LOCUST_THRESHOLDS_FILE)


def load_gate_thresholds(
    files: Sequence[Path], override_files: Sequence[Path] = (), sets: Sequence[str] = ()
) -> ThresholdSet:
    """Every file's thresholds in one set, then the override files and `--threshold-set` strings over it.

    Raises ThresholdConfigError listing every problem (an id defined in two files is one)."""
    if not files:
        raise ThresholdConfigError([Problem("--thresholds", None, None, "no thresholds file given")])
    parts = [load_thresholds(path) for path in files]
    seen: dict[str, str] = {}
    problems = []
    for part in parts:
        for threshold in part.thresholds:
            if threshold.id in seen:
                problems.append(
                    Problem(
                        threshold.origin,
                        None,
                        None,
                        f"threshold id {threshold.id!r} is also defined at {seen[threshold.id]}; give one an `id:`",
                    )
                )
            seen.setdefault(threshold.id, threshold.origin)
    if problems:
        raise ThresholdConfigError(problems)
    combined = ThresholdSet(
        tuple(t for part in parts for t in part.thresholds), tuple(s for part in parts for s in part.sources)
    )
    for path in override_files:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ThresholdConfigError(
                [Problem(str(path), None, None, f"cannot read the file ({exc.strerror}); check the path")]
            ) from None
        combined = apply_override_text(combined, text, str(path))
    return apply_sets(combined, sets) if sets else combined


def judged_thresholds(thresholds: ThresholdSet, expected_metrics: Collection[str]) -> ThresholdSet:
    """The thresholds on metrics the run set out to measure."""
    return ThresholdSet(tuple(t for t in thresholds.thresholds if t.metric in expected_metrics), thresholds.sources)


@dataclass(frozen=True)
class GateOutcome:
    evaluation: list[ThresholdResult]
    # Why the run is broken beyond what the thresholds say; empty when it ran as written.
    problems: list[str]
    skipped: list[str]

    @property
    def exit_code(self) -> int:
        return ExitCode.BROKEN if self.problems else exit_code(self.evaluation)

    def text(self) -> str:
        lines = [format_verdict_table(self.evaluation)] if self.evaluation else []
        if self.skipped:
            lines.append(f"{len(self.skipped)} thresholds not judged: this locustfile does not measure their metrics")
        lines += [f"BROKEN: {problem}" for problem in self.problems]
        if self.problems or not self.evaluation:
            code = self.exit_code
            lines.append(f"locust gate: exit {code}: {EXIT_CODE_MEANINGS.get(code, '')}")
        return "\n".join(lines)


def judge(
    thresholds: ThresholdSet, results: RunResults, expected_metrics: Collection[str], user_exceptions: int = 0
) -> GateOutcome:
    chosen = judged_thresholds(thresholds, expected_metrics)
    evaluation = evaluate(chosen, results)
    problems = []
    if not chosen.thresholds:
        problems.append(
            "the run made no request that any threshold judges (no user ran, or the locustfile's users do not "
            "record harness metrics); nothing was judged"
        )
    if user_exceptions:
        problems.append(
            f"user code raised {user_exceptions} unhandled exception(s) (see Locust's exception report): "
            "the workload did not run as written"
        )
    judged_ids = {t.id for t in chosen.thresholds}
    skipped = [t.id for t in thresholds.thresholds if t.id not in judged_ids]
    return GateOutcome(evaluation, problems, skipped)
