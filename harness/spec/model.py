"""fixtures/unit.yaml loaded into typed facts. Invalid input is refused with the fact and field named,
before anything uses a value."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.inputfiles import InputFileError, brief, load_input_yaml
from harness.paths import FIXTURES_DIR

DEFAULT_SPEC_FILE = FIXTURES_DIR / "unit.yaml"
SCHEMA_VERSION = 1
KINDS = ("value", "cidr")

Scalar = str | int | float | bool


class SpecError(ValueError):
    """unit.yaml (or an override of it) cannot be used; the message says where and what to change."""


@dataclass(frozen=True)
class Claim:
    value: Scalar
    section: str
    quote: str


@dataclass(frozen=True)
class Fact:
    name: str
    claims: tuple[Claim, ...]
    kind: str = "value"
    unit: str | None = None
    # Set in unit.yaml (with `why`) or by an override; None means "the claims' common value".
    use: Scalar | None = None
    why: str | None = None
    overridden: bool = False

    def same(self, a: Scalar, b: Scalar) -> bool:
        if self.kind == "cidr":
            return ipaddress.ip_network(str(a)) == ipaddress.ip_network(str(b))
        # bool is an int in Python: True must not equal 1 here.
        return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b

    def distinct_values(self) -> list[Scalar]:
        values: list[Scalar] = []
        for claim in self.claims:
            if not any(self.same(claim.value, v) for v in values):
                values.append(claim.value)
        return values

    @property
    def value(self) -> Scalar | None:
        """The value the harness uses: the chosen one, else the one the claims agree on, else None."""
        if self.use is not None:
            return self.use
        values = self.distinct_values()
        return values[0] if len(values) == 1 else None


@dataclass(frozen=True)
class UnitSpec:
    path: Path
    document: Path
    facts: dict[str, Fact]

    def fact(self, name: str) -> Fact:
        try:
            return self.facts[name]
        except KeyError:
            raise SpecError(
                f"{self.path}: no fact {brief(repr(name))}; facts: {', '.join(sorted(self.facts))}"
            ) from None

    def value(self, name: str) -> Scalar:
        fact = self.fact(name)
        value = fact.value
        if value is None:
            raise SpecError(
                f"{self.path}: {name} is unresolved (the document says {fact.distinct_values()}); "
                "set `use:` and `why:` for it, or pass --use"
            )
        return value

    def with_uses(self, uses: Mapping[str, str]) -> UnitSpec:
        """A copy with values chosen on the command line (`--use FACT=VALUE`), typed like the fact's claims."""
        facts = dict(self.facts)
        for name, text in uses.items():
            fact = self.fact(name)
            facts[name] = replace(
                fact, use=_coerce(fact, text), why="chosen on the command line (--use)", overridden=True
            )
        return replace(self, facts=facts)


def parse_uses(pairs: list[str]) -> dict[str, str]:
    """`FACT=VALUE` strings (--use, HARNESS_SPEC_USE) as a mapping; a malformed one is refused."""
    uses = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise SpecError(f"--use {brief(repr(pair))}: write FACT=VALUE, e.g. --use region=us-east-1")
        uses[name.strip()] = value.strip()
    return uses


def _coerce(fact: Fact, text: str) -> Scalar:
    sample = fact.value if fact.value is not None else (fact.claims[0].value if fact.claims else text)
    try:
        if isinstance(sample, bool):
            lowered = text.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError
            return lowered == "true"
        if isinstance(sample, int):
            return int(text)
        if isinstance(sample, float):
            return float(text)
        if fact.kind == "cidr":
            return str(ipaddress.ip_network(text))
    except ValueError:
        raise SpecError(f"--use {fact.name}={text}: {fact.name} takes a {type(sample).__name__} value") from None
    return text


def _claim(fact: str, i: int, raw: object) -> Claim:
    where = f"facts.{fact}.claims[{i}]"
    if not isinstance(raw, Mapping) or set(raw) != {"value", "section", "quote"}:
        raise SpecError(f"{where}: a claim is {{value, section, quote}}, got {brief(repr(raw))}")
    value, section, quote = raw["value"], raw["section"], raw["quote"]
    if not isinstance(value, str | int | float | bool):
        raise SpecError(f"{where}.value: a scalar (text, number, true/false), got {brief(repr(value))}")
    if not isinstance(section, str) or not isinstance(quote, str) or not section or not quote:
        raise SpecError(f"{where}: section and quote must be non-empty text")
    return Claim(value, section, quote)


def _fact(name: str, raw: object) -> Fact:
    where = f"facts.{name}"
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: a mapping with claims (and use/why when needed), got {brief(repr(raw))}")
    unknown = set(raw) - {"claims", "kind", "unit", "use", "why"}
    if unknown:
        raise SpecError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; allowed: claims, kind, unit, use, why"
        )
    claims_raw = raw.get("claims")
    if not isinstance(claims_raw, list):
        raise SpecError(
            f"{where}.claims: a list (empty when the document names no value), got {brief(repr(claims_raw))}"
        )
    kind = raw.get("kind", "value")
    if kind not in KINDS:
        raise SpecError(f"{where}.kind: one of {', '.join(KINDS)}, got {brief(repr(kind))}")
    use = raw.get("use")
    if use is not None and not isinstance(use, str | int | float | bool):
        raise SpecError(f"{where}.use: a scalar, got {brief(repr(use))}")
    why = raw.get("why")
    if use is not None and not why:
        raise SpecError(f"{where}: `use` needs a `why` (which claim wins, and the reason)")
    fact = Fact(name, tuple(_claim(name, i, c) for i, c in enumerate(claims_raw)), kind, raw.get("unit"), use, why)
    if kind == "cidr":
        for value in [c.value for c in fact.claims] + ([use] if use is not None else []):
            try:
                ipaddress.ip_network(str(value))
            except ValueError:
                raise SpecError(f"{where}: {brief(repr(value))} is not a network (kind cidr)") from None
    if not fact.claims and use is None:
        raise SpecError(f"{where}: the document names no value, so `use` and `why` are required")
    return fact


def load_unit_spec(path: Path = DEFAULT_SPEC_FILE) -> UnitSpec:
    try:
        raw = load_input_yaml(path, "the unit spec")
    except InputFileError as exc:
        raise SpecError(str(exc)) from None
    if not isinstance(raw, Mapping):
        raise SpecError(f"{path}: expected a mapping with schema_version, document and facts")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise SpecError(
            f"{path}: schema_version must be {SCHEMA_VERSION}, got {brief(repr(raw.get('schema_version')))}"
        )
    document = raw.get("document")
    facts: Any = raw.get("facts")
    if not isinstance(document, str) or not isinstance(facts, Mapping) or not facts:
        raise SpecError(f"{path}: `document` (a path) and `facts` (a mapping) are required")
    return UnitSpec(
        path=path,
        document=(path.parent / document).resolve(),
        facts={str(name): _fact(str(name), value) for name, value in facts.items()},
    )
