"""`harness spec lint`: where the design document contradicts itself, as a pipeline's validate stage
would report it, and whether unit.yaml resolves each contradiction (which value the harness uses, why).

A contradiction the spec leaves open, or a quote the document no longer contains, is an error: the
harness would otherwise emulate a unit nobody can name.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from harness.spec.document import Document
from harness.spec.model import Fact, Scalar, UnitSpec


class FindingKind(StrEnum):
    # The document says two things; unit.yaml chose one (or a command-line --use did).
    RESOLVED = "RESOLVED"
    # The document says two things and nothing chose.
    CONTRADICTION = "CONTRADICTION"
    # A claim's quote is not in its section: the document changed, or the claim is wrong.
    NOT_IN_DOCUMENT = "NOT IN DOCUMENT"
    # The harness uses a value the document does not state (or one no claim holds).
    CHOSEN = "CHOSEN"


@dataclass(frozen=True)
class SpecFinding:
    kind: FindingKind
    fact: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.kind in (FindingKind.CONTRADICTION, FindingKind.NOT_IN_DOCUMENT)

    def line(self) -> str:
        return f"{self.kind.value:<15} {self.fact}: {self.message}"


def _show(value: Scalar) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _disagreement(fact: Fact) -> str:
    parts = []
    for value in fact.distinct_values():
        where = "; ".join(f'{c.section}: "{c.quote}"' for c in fact.claims if fact.same(c.value, value))
        parts.append(f"{_show(value)} ({where})")
    text = " vs ".join(parts)
    if fact.kind == "cidr":
        networks = [ipaddress.ip_network(str(v)) for v in fact.distinct_values()]
        disjoint = all(not a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])
        if disjoint:
            text += "; the networks do not overlap, so no address is in both"
    return text


def _quote_found(document: Document, fact: Fact) -> list[str]:
    missing = []
    for claim in fact.claims:
        text = document.text_under(claim.section)
        if text is None:
            missing.append(f'section "{claim.section}" does not exist in {document.path.name}')
        elif claim.quote not in text:
            missing.append(f'"{claim.quote}" is not in section "{claim.section}"')
    return missing


def lint(spec: UnitSpec, document: Document | None) -> list[SpecFinding]:
    """Every finding, contradictions first. Without a document the quotes are not checked."""
    findings: list[SpecFinding] = []
    for fact in spec.facts.values():
        values = fact.distinct_values()
        if len(values) > 1:
            if fact.use is None:
                findings.append(
                    SpecFinding(
                        FindingKind.CONTRADICTION,
                        fact.name,
                        f"{_disagreement(fact)}. Choose one in {spec.path.name} (use + why) or with "
                        f"--use {fact.name}=VALUE",
                    )
                )
            else:
                by = "--use on the command line" if fact.overridden else spec.path.name
                findings.append(
                    SpecFinding(
                        FindingKind.RESOLVED,
                        fact.name,
                        f"{_disagreement(fact)}. The harness uses {_show(fact.use)} ({by}): {fact.why}",
                    )
                )
        elif fact.use is not None and not (values and fact.same(values[0], fact.use)):
            stated = f"the document says {_show(values[0])}" if values else "the document names no value"
            findings.append(
                SpecFinding(FindingKind.CHOSEN, fact.name, f"{stated}; the harness uses {_show(fact.use)}: {fact.why}")
            )
        if document is not None:
            findings.extend(
                SpecFinding(FindingKind.NOT_IN_DOCUMENT, fact.name, m) for m in _quote_found(document, fact)
            )
    order = [FindingKind.CONTRADICTION, FindingKind.NOT_IN_DOCUMENT, FindingKind.RESOLVED, FindingKind.CHOSEN]
    return sorted(findings, key=lambda f: order.index(f.kind))


def unresolved(findings: list[SpecFinding]) -> list[SpecFinding]:
    return [f for f in findings if f.is_error]
