"""The workload file: a team's query mix, as captured from a deployment and edited by hand.

One YAML document: where it came from, and a list of statements, each a normalised query ($1, $2...), how
often and how long it ran there (calls, mean_ms, total_ms: what pg_stat_statements reports), its replay
weight (its calls unless set), an optional latency threshold in the harness's grammar (`p95 < 20ms`), and one
parameter generator per placeholder:

    {sample: [values...]}          one of these values, drawn uniformly (written by `harness workload params`
                                   from the seeded data: edit freely)
    {vector: table.column}         a held-out query vector of that column's ground truth
    {value: 10}                    always this value
    {range: [lo, hi]}              a whole number in [lo, hi]
    {todo: why}                    no generator yet (`params` could not tell the placeholder's role):
                                   replay refuses the statement until one is written

Example: fixtures/example_app/workload.yaml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.inputfiles import InputFileError, load_input_yaml
from harness.thresholds.grammar import Condition, ExpressionError, parse_expression

PARAM_KINDS = ("sample", "vector", "value", "range", "todo")
_PLACEHOLDER = re.compile(r"\$(\d+)")


class WorkloadError(ValueError):
    """A workload file that cannot be used; the message names the statement and what to change."""


def placeholders(query: str) -> int:
    """The highest $n in a normalised query (pg_stat_statements numbers them from 1)."""
    return max((int(n) for n in _PLACEHOLDER.findall(query)), default=0)


@dataclass
class Statement:
    id: str
    query: str
    calls: int = 0
    mean_ms: float | None = None
    total_ms: float | None = None
    weight: float | None = None
    threshold: str | None = None
    params: list[dict[str, Any]] = field(default_factory=list)

    @property
    def replay_weight(self) -> float:
        return float(self.weight if self.weight is not None else self.calls)

    def condition(self) -> Condition | None:
        return parse_expression(self.threshold) if self.threshold else None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "query": self.query, "calls": self.calls}
        for key in ("mean_ms", "total_ms", "weight", "threshold"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.params:
            out["params"] = self.params
        return out


@dataclass
class Workload:
    statements: list[Statement]
    source: dict[str, Any] = field(default_factory=dict)
    # Other top-level sections (vector_search: see harness.workload.target), kept as written.
    sections: dict[str, Any] = field(default_factory=dict)

    def statement(self, sid: str) -> Statement:
        for s in self.statements:
            if s.id == sid:
                return s
        raise WorkloadError(f"no statement {sid!r} in the workload")

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, **self.sections, "statements": [s.as_dict() for s in self.statements]}

    def missing_params(self) -> list[str]:
        """Statements whose placeholders do not all have a generator yet."""
        return [
            s.id for s in self.statements if len(s.params) < placeholders(s.query) or any("todo" in p for p in s.params)
        ]


def _check_param(param: Any, where: str) -> None:
    if not isinstance(param, dict) or len(param) != 1 or next(iter(param)) not in PARAM_KINDS:
        raise WorkloadError(f"{where}: expected one of {', '.join('{' + k + ': ...}' for k in PARAM_KINDS)}")
    kind, value = next(iter(param.items()))
    if kind == "sample" and (not isinstance(value, list) or not value):
        raise WorkloadError(f"{where}.sample: expected a non-empty list of values")
    if kind == "vector" and (not isinstance(value, str) or value.count(".") != 1):
        raise WorkloadError(f"{where}.vector: expected table.column of a seeded vector column, got {value!r}")
    if kind == "range" and (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) for v in value)
        or value[0] > value[1]
    ):
        raise WorkloadError(f"{where}.range: expected [low, high] whole numbers, low <= high")


def parse_workload(raw: Any, origin: str) -> Workload:
    if not isinstance(raw, dict) or not isinstance(raw.get("statements"), list):
        raise WorkloadError(f"{origin}: a workload file needs a top-level `statements:` list")
    statements: list[Statement] = []
    for i, item in enumerate(raw["statements"]):
        where = f"{origin}: statements[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("query"), str) or not item["query"].strip():
            raise WorkloadError(f"{where}: each statement needs a `query`")
        sid = str(item.get("id") or f"s{i + 1}")
        where = f"{origin}: statement {sid}"
        if any(s.id == sid for s in statements):
            raise WorkloadError(f"{where}: the id is used twice")
        params = item.get("params") or []
        if not isinstance(params, list):
            raise WorkloadError(f"{where}.params: expected a list, one generator per $n")
        for n, param in enumerate(params, start=1):
            _check_param(param, f"{where}.params[${n}]")
        needed = placeholders(item["query"])
        if len(params) > needed:
            raise WorkloadError(f"{where}: {len(params)} parameter generators for {needed} placeholders")
        calls = item.get("calls", 0)
        weight = item.get("weight")
        if not isinstance(calls, int) or calls < 0 or (weight is not None and not isinstance(weight, int | float)):
            raise WorkloadError(f"{where}: calls must be a whole number >= 0 and weight a number")
        threshold = item.get("threshold")
        if threshold is not None:
            try:
                parse_expression(str(threshold))
            except ExpressionError as exc:
                raise WorkloadError(f"{where}.threshold {threshold!r}: {exc}") from None
        statements.append(
            Statement(
                sid,
                item["query"].strip(),
                calls,
                item.get("mean_ms"),
                item.get("total_ms"),
                weight,
                str(threshold) if threshold is not None else None,
                list(params),
            )
        )
    if not statements:
        raise WorkloadError(f"{origin}: the workload has no statements")
    source = raw.get("source") or {}
    sections = {k: v for k, v in raw.items() if k not in ("source", "statements")}
    return Workload(statements, source if isinstance(source, dict) else {"note": str(source)}, sections)


def load_workload(path: Path) -> Workload:
    try:
        raw = load_input_yaml(path, "the workload file")
    except InputFileError as exc:
        raise WorkloadError(str(exc)) from None
    return parse_workload(raw, str(path))


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line (a sample of 50 ids stays readable), everything else in block style."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, str | int | float | bool) or v is None for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def leading_comments(path: Path) -> str:
    """The comment block at the top of a file, so rewriting it keeps the team's notes."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def save_workload(workload: Workload, path: Path, header: str = "") -> None:
    """Write atomically (a temporary file renamed over the old one): an interrupted write leaves the old file."""
    text = yaml.dump(workload.as_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text((header + "\n" if header else "") + text)
    tmp.replace(path)
