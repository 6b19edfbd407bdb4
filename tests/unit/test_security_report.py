"""The sign-off report's security section."""

from harness.report.text import flatten_facts, render_markdown


def test_the_report_has_a_security_section_with_each_finding_and_keeps_it_out_of_the_environment():
    run = {
        "security": {
            "verdict": "PASS",
            "findings": [
                {"item": "Encryption at rest verified", "check": "storage", "status": "NOT EMULATED", "evidence": "e1"}
            ],
        }
    }
    text = render_markdown(run, [], [], [], "now", [], 0)
    assert "## Security" in text and "| Encryption at rest verified | NOT EMULATED | storage | e1 |" in text
    assert not [key for key, _ in flatten_facts(run) if key.startswith("security")]
    assert "Not checked in this run" in render_markdown({}, [], [], [], "now", [], 0)
