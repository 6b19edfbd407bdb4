"""junit.xml: one testcase per threshold, so CI systems show the verdict in their own test views.

FAIL is a <failure>, ERROR an <error>; WARN passes (a warning must not fail the build by itself) but
says so in <system-out> and a `status` property, which Jenkins and GitLab both display.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from harness.report.text import conditions
from harness.thresholds import Status, ThresholdResult


def _property(parent: ET.Element, name: str, value: object) -> None:
    if value is not None:
        ET.SubElement(parent, "property", name=name, value=f"{value:.6g}" if isinstance(value, float) else str(value))


def junit_xml(results: Sequence[ThresholdResult], suite_name: str, timestamp: str) -> bytes:
    counts = {status: sum(r.status is status for r in results) for status in Status}
    suites = ET.Element(
        "testsuites",
        name=suite_name,
        tests=str(len(results)),
        failures=str(counts[Status.FAIL]),
        errors=str(counts[Status.ERROR]),
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=suite_name,
        tests=str(len(results)),
        failures=str(counts[Status.FAIL]),
        errors=str(counts[Status.ERROR]),
        skipped=str(counts[Status.NOT_EMULATED]),
        time="0",
        timestamp=timestamp,
    )
    for r in results:
        t = r.threshold
        case = ET.SubElement(suite, "testcase", classname=f"thresholds.{t.metric.split('.')[0]}", name=t.id, time="0")
        props = ET.SubElement(case, "properties")
        _property(props, "status", r.status.value)
        _property(props, "conditions", conditions(t))
        _property(props, "unit", t.unit or "none")
        _property(props, "measured", r.measured)
        _property(props, "level", r.level)
        _property(props, "level_name", r.level_name)
        _property(props, "margin", r.margin)
        _property(props, "sample_size", r.sample_size)
        _property(props, "source", t.source)
        if r.status is Status.FAIL:
            ET.SubElement(case, "failure", message=r.message, type="critical").text = r.message
        elif r.status is Status.ERROR:
            ET.SubElement(case, "error", message=r.message, type="not-judged").text = r.message
        elif r.status is Status.NOT_EMULATED:
            ET.SubElement(case, "skipped", message=f"NOT EMULATED: {r.message}")
        elif r.status is Status.WARN:
            ET.SubElement(case, "system-out").text = f"WARN: {r.message}"
        else:
            ET.SubElement(case, "system-out").text = f"PASS: {r.message}"
    ET.indent(suites)
    return bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True)) + b"\n"


def write_junit(
    results: Sequence[ThresholdResult],
    path: Path,
    timestamp: str,
    suite_name: str = "dbunit-harness.thresholds",
) -> None:
    path.write_bytes(junit_xml(results, suite_name, timestamp))
