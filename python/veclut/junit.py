"""JUnit XML for CI systems: one test case per check row."""

import xml.etree.ElementTree as ET
from pathlib import Path

from . import atomic


def write(path: Path, suite: str, rows: list[dict]) -> None:
    failures = sum(not r["pass"] for r in rows)
    root = ET.Element("testsuites")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(rows)), failures=str(failures))
    for row in rows:
        case = ET.SubElement(node, "testcase", classname=f"{suite}.{row['group']}", name=row["what"])
        if not row["pass"]:
            failure = ET.SubElement(case, "failure", message=f"{row['metric']} {row['worst']:.3g} > limit {row['limit']:.3g}")
            failure.text = row.get("detail", "")
    atomic.write_text(path, ET.tostring(root, encoding="unicode") + "\n", f"write {path}")
