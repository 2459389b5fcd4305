#!/usr/bin/env python3
"""junit_outcomes.py -- one line per test case of a JUnit XML file: "<pass|fail|skip> <name>".

ctest --output-junit writes the file; scripts/check.sh names tests from it. A test case with a
<failure> or <error> element failed, one with <skipped> was skipped (SKIP_RETURN_CODE), any other
passed. An unreadable file exits 2, which check.sh counts as a failure of the run."""
import sys
import xml.etree.ElementTree as ET


def main(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"junit_outcomes: {path}: {e}", file=sys.stderr)
        return 2
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "fail"
        elif case.find("skipped") is not None:
            outcome = "skip"
        else:
            outcome = "pass"
        print(outcome, name.replace(" ", "_"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
