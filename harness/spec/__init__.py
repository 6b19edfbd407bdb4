"""The unit's spec: fixtures/unit.yaml, the Database Unit's values as its design document states them, each
with the section it comes from, and the lint that finds where the document contradicts itself.

spec = load_spec(DEFAULT_SPEC_FILE)
findings = lint(spec, read_document(spec.document))
spec.value("region")  # the value the harness uses
"""

from harness.spec.document import DocumentError, Section, read_document
from harness.spec.lint import Finding, FindingKind, lint, unresolved
from harness.spec.model import DEFAULT_SPEC_FILE, Claim, Fact, SpecError, UnitSpec, load_spec

__all__ = [
    "DEFAULT_SPEC_FILE",
    "Claim",
    "DocumentError",
    "Fact",
    "Finding",
    "FindingKind",
    "Section",
    "SpecError",
    "UnitSpec",
    "lint",
    "load_spec",
    "read_document",
    "unresolved",
]
