"""The unit's spec: fixtures/unit.yaml, the Database Unit's values as its design document states them, each
with the section it comes from, and the lint that finds where the document contradicts itself.

spec = load_unit_spec(DEFAULT_SPEC_FILE)
findings = lint(spec, read_document(spec.document))
spec.value("region")  # the value the harness uses
"""

from harness.spec.document import DocumentError, Section, read_document
from harness.spec.lint import FindingKind, SpecFinding, lint, unresolved
from harness.spec.model import DEFAULT_SPEC_FILE, Claim, Fact, SpecError, UnitSpec, load_unit_spec

__all__ = [
    "DEFAULT_SPEC_FILE",
    "Claim",
    "DocumentError",
    "Fact",
    "FindingKind",
    "Section",
    "SpecError",
    "SpecFinding",
    "UnitSpec",
    "lint",
    "load_unit_spec",
    "read_document",
    "unresolved",
]
