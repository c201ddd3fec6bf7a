#!/usr/bin/env python3
"""Total the results of every test run into one line: 'N passed, N failed'.

Arguments: meson testlog.json files and/or plain result files (lines
'PASS name' / 'FAIL name' / 'SKIP name' written by tools/test.sh).
A libcheck program counts as its individual checks ("Checks: N, Failures: F,
Errors: E"); any other test counts as one.
"""
import json
import re
import sys

CHECK_RE = re.compile(r"(\d+)%: Checks: (\d+), Failures: (\d+), Errors: (\d+)")

passed = failed = skipped = 0
failures = []
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        print(f"summarize: cannot read {path}: {e}", file=sys.stderr)
        failed += 1
        continue
    if path.endswith(".json"):
        for line in lines:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            name, result = t.get("name", "?"), t.get("result", "?")
            out = (t.get("stdout") or "") + (t.get("stderr") or "")
            checks = CHECK_RE.findall(out)
            if result == "SKIP":
                skipped += 1
                continue
            if checks:
                n = sum(int(c[1]) for c in checks)
                bad = sum(int(c[2]) + int(c[3]) for c in checks)
                if result not in ("OK", "EXPECTEDFAIL") and bad == 0:
                    bad = 1
                    n += 1
                passed += n - bad
                failed += bad
            elif result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            else:
                failed += 1
            if result not in ("OK", "EXPECTEDFAIL", "SKIP"):
                failures.append(f"{path}: {name}: {result}")
    else:
        for line in lines:
            parts = line.split(None, 1)
            if not parts:
                continue
            if parts[0] == "PASS":
                passed += 1
            elif parts[0] == "FAIL":
                failed += 1
                failures.append(f"{path}: {parts[1].strip() if len(parts) > 1 else '?'}")
            elif parts[0] == "SKIP":
                skipped += 1
for f in failures:
    print("failed:", f)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
