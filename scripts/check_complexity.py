"""Fail when a function in scanner/, storage/ or exporters/ has a cyclomatic complexity
above 20, i.e. when `radon cc -n D -s scanner storage exporters` prints anything.

    python scripts/check_complexity.py     (run by `make test`)

PENDING names the functions known to be above the limit while their rework is under
way; each must still be above it (a stale entry fails too), so the list only shrinks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGES = ("scanner", "storage", "exporters")
# "path:function" of functions being split right now; remove an entry when it is done.
PENDING: set[str] = set()
# radon -s: a file line, then one indented line per block: "F 59:0 name - D (23)"
BLOCK = re.compile(r"^\s+[FMC] \d+:\d+ (?P<name>\S+) - (?P<rank>[A-F]) \((?P<cc>\d+)\)$")


def radon_report(root: Path) -> str:
    radon = Path(sys.executable).with_name("radon")
    command = [str(radon), "cc", "-n", "D", "-s", *PACKAGES]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, check=True).stdout


def too_complex(report: str) -> list[tuple[str, str]]:
    """(path:function, the radon line) for every block radon printed."""
    found: list[tuple[str, str]] = []
    path = ""
    for line in report.splitlines():
        match = BLOCK.match(line)
        if match:
            found.append((f"{path}:{match['name']}", line.strip()))
        elif line.strip():
            path = line.strip()
    return found


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    report = radon_report(root)
    found = too_complex(report)
    if report.strip() and not found:
        print(report)
        print("check_complexity: could not read radon's output above")
        return 1
    new = [(name, line) for name, line in found if name not in PENDING]
    stale = sorted(PENDING - {name for name, _ in found})
    for name, line in new:
        print(f"{name}: {line}")
    if new:
        print(f"{len(new)} function(s) above cyclomatic complexity 20: split them")
    if stale:
        print(f"no longer above the limit, remove from PENDING in {__file__}: {stale}")
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
