"""Thresholds as data: a k6-like expression grammar, threshold files with overrides, and evaluation.

Modules: grammar (expressions), yaml_positions (YAML nodes with file positions), problems (what is wrong,
where), model (Threshold, ThresholdSet), validation (expression vs metric, level vs level), loading (the
defaults file), overrides (override files and `--set`), evaluate (thresholds vs measured results).

thresholds = load_thresholds(Path("fixtures/thresholds.yaml"), [Path("ci.yaml")], ["id:warning=p95 < 80ms"])
outcome = evaluate(thresholds, load_results("reports/run/results.json"))
sys.exit(exit_code(outcome))
"""

from harness.thresholds.evaluate import (
    EXIT_CODE_MEANINGS,
    ExitCode,
    Status,
    ThresholdResult,
    evaluate,
    exit_code,
    not_emulated_note,
    verdict,
)
from harness.thresholds.grammar import Condition, ExpressionError, parse_expression
from harness.thresholds.loading import load_thresholds, parse_thresholds
from harness.thresholds.model import Threshold, ThresholdSet
from harness.thresholds.overrides import apply_override_text, apply_sets
from harness.thresholds.problems import Problem, ThresholdConfigError

__all__ = [
    "EXIT_CODE_MEANINGS",
    "Condition",
    "ExitCode",
    "ExpressionError",
    "Problem",
    "Status",
    "Threshold",
    "ThresholdConfigError",
    "ThresholdResult",
    "ThresholdSet",
    "apply_override_text",
    "apply_sets",
    "evaluate",
    "exit_code",
    "load_thresholds",
    "not_emulated_note",
    "parse_expression",
    "parse_thresholds",
    "verdict",
]
