"""The checklist's security items ("Encryption at rest verified", "Encryption in transit verified", "Security
group rules tested", "IAM permissions validated") as a scenario, so every sign-off report carries them with
their evidence. The same checks as `harness verify security`."""

from harness.report.text import SECURITY_FACT
from harness.security.checks import ERROR, FAIL, SecurityContext, run_checks, verdict


def test_the_security_checklist_holds_or_says_what_is_not_emulated(stack, harness_settings, seeded, results):
    findings = run_checks(SecurityContext(stack, harness_settings.state_dir))
    results.update_run({SECURITY_FACT: {"verdict": verdict(findings), "findings": [f.as_dict() for f in findings]}})
    for f in findings:
        print(f"{f.status:12} {f.item}: {f.check}")
    broken = [f"{f.status} {f.check}: {f.evidence}" for f in findings if f.status in (FAIL, ERROR)]
    assert not broken, "\n".join(broken)
