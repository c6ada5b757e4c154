#!/usr/bin/env python3
"""Reads a verbose ctest log and prints "N passed, M failed, K skipped" over individual tests:
Criterion executables report their own counts through the advect-tests report hook
(tests/common), other ctest tests count as one test each. Exit 1 if anything failed."""
import re
import sys

text = open(sys.argv[1], errors="replace").read()
passed = failed = skipped = 0
criterion_tests = set()
for m in re.finditer(r"advect-tests: (\S+): (\d+) passed, (\d+) failed, (\d+) skipped", text):
    criterion_tests.add(m.group(1))
    passed += int(m.group(2))
    failed += int(m.group(3))
    skipped += int(m.group(4))
# ctest result lines: "  1/12 Test  #3: conformance_cpu ..........   Passed    0.52 sec"
for m in re.finditer(r"^\s*\d+/\d+ Test\s+#\d+: (\S+) [ .]+\**\s*(\S+)", text, re.M):
    name, result = m.group(1), m.group(2)
    if result == "Skipped":  # SKIP_RETURN_CODE: e.g. a GPU check with no usable GPU
        skipped += 1
        continue
    ok = result == "Passed"
    if name in criterion_tests:  # counted test by test through the report hook...
        if result != "Passed":  # ...but the program itself failed (e.g. a sanitizer report
            failed += 1         # after the tests, or a crash): count that failure too.
        continue
    if ok:
        passed += 1
    else:
        failed += 1
total_line = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", text)
if total_line is None:
    failed += 1
    print("ctest did not finish (no summary line)")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
