"""JUnit XML for CI: one testcase per gate line, a failure element carrying the measured value.

The layout is the Ant/Jenkins one (testsuites > testsuite > testcase > failure) that GitHub Actions
test reporters and GitLab's `artifacts:reports:junit` read; tests validate it against Jenkins'
junit-10.xsd (tests/data/junit-10.xsd).
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


@dataclass(frozen=True)
class JUnitCase:
    classname: str          # reporters group by it: gala.gate.<link>
    name: str               # the budget, e.g. "p(99) < 250 ms"
    failure: str | None     # the failure's one-line message (None: the case passed)
    details: str = ""       # the failure element's text: measured, threshold, where the budget is written
    failure_type: str = "BudgetBroken"


def junit_xml(suite: str, cases: list[JUnitCase], properties: dict[str, str] | None = None,
              system_out: str = "", timestamp: datetime | None = None) -> bytes:
    """The JUnit XML document (UTF-8 bytes) for one test suite."""
    failures = sum(c.failure is not None for c in cases)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0"}
    root = ET.Element("testsuites", name="gala gate", time="0", **counts)
    ts = (timestamp or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S")
    suite_el = ET.SubElement(root, "testsuite", name=suite, skipped="0", time="0", timestamp=ts,
                             hostname=socket.gethostname(), **counts)
    if properties:
        props = ET.SubElement(suite_el, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", name=key, value=str(value))
    for case in cases:
        el = ET.SubElement(suite_el, "testcase", classname=case.classname, name=case.name, time="0")
        if case.failure is not None:
            fail = ET.SubElement(el, "failure", message=case.failure, type=case.failure_type)
            fail.text = case.details or case.failure
    if system_out:
        ET.SubElement(suite_el, "system-out").text = system_out
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(path: str | Path, suite: str, cases: list[JUnitCase], **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(junit_xml(suite, cases, **kwargs))
    return path
