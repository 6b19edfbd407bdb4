"""The sign-off's backbone: every item of the design document's pre- and post-deployment checklists,
decided by a check (PASS, WARN, FAIL, NOT EMULATED and why, NOT CHECKED YET) with its evidence.

items = evaluate_checklist(results.run, threshold_results)
run_probes(stack)  # the live checks, recorded into results.json by `harness signoff`
"""

from harness.checklist.checks import CHECKS, Check, judge_thresholds
from harness.checklist.evaluate import checklist_exit_code, evaluate_checklist, status_counts
from harness.checklist.items import CHECKLIST, POST_DEPLOYMENT, PRE_DEPLOYMENT
from harness.checklist.model import CheckContext, ChecklistItem, CheckResult, CheckStatus, ItemResult
from harness.checklist.probes import PROBES, run_probes

__all__ = [
    "CHECKLIST",
    "CHECKS",
    "POST_DEPLOYMENT",
    "PRE_DEPLOYMENT",
    "PROBES",
    "Check",
    "CheckContext",
    "CheckResult",
    "CheckStatus",
    "ChecklistItem",
    "ItemResult",
    "checklist_exit_code",
    "evaluate_checklist",
    "judge_thresholds",
    "run_probes",
    "status_counts",
]
