"""Wildcard matching time against adversarial patterns: it must grow linearly.

Usage (from the repository root):
    .venv/bin/python benchmarks/wildcard_bench.py
    .venv/bin/python benchmarks/wildcard_bench.py --sizes 1000 2000 4000 8000 16000

For each size n the value is n characters long and the pattern holds about n/2 wildcards,
in the shapes that make a backtracking matcher exponential or quadratic. Times are the
best of a few repetitions (CPU time of this process), with time per value character, which
stays flat when growth is linear.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner.policy.wildcard import compile_glob, glob_to_regex  # noqa: E402

Case = Callable[[int], tuple[str, str]]


def star_question(n: int) -> tuple[str, str]:
    """`?*?*...?*Z` against `aaaa...`: the pattern from the report, scaled up."""
    return "?*" * (n // 4) + "Z", "a" * n


def star_question_match(n: int) -> tuple[str, str]:
    """The same pattern against a value that does end in `Z`: every segment is placed."""
    return "?*" * (n // 4) + "Z", "a" * (n - 1) + "Z"


def many_stars(n: int) -> tuple[str, str]:
    """`*a*a*...*a*b` against `aaaa...`: quadratic for a naive backtracking glob."""
    return "*a" * (n // 4) + "*b", "a" * n


def question_segments(n: int) -> tuple[str, str]:
    """`*a?a?...a?b*` segments with `?` (shift-and path) against `aaaa...`."""
    return "*" + "a?" * 30 + "b*", "a" * n


def long_question_segment(n: int) -> tuple[str, str]:
    """`*a?a?...b*` with n/4 characters in the segment (bit-parallel path)."""
    return "*" + "a?" * (n // 8) + "b*", "a" * n


def long_literal(n: int) -> tuple[str, str]:
    """`*aaa...ab*` (a long literal segment) against `aaaa...`."""
    return "*" + "a" * (n // 4) + "b*", "a" * n


def arn_shaped(n: int) -> tuple[str, str]:
    """An ARN pattern with `?*` pairs in the resource id against a long key id."""
    return (
        "arn:aws:kms:*:*:key/" + "?*" * (n // 4) + "Z",
        "arn:aws:kms:us-east-1:111122223333:key/" + "0123456789abcdef" * (n // 16),
    )


CASES: dict[str, Case] = {
    "?*?*...Z": star_question,
    "?*?*...Z (matches)": star_question_match,
    "*a*a*...*b": many_stars,
    "*a?a?...b*": question_segments,
    "*a?a?...b* (n/4 long)": long_question_segment,
    "*aaa...b*": long_literal,
    "arn ?*?*...Z": arn_shaped,
}


def measure(case: Case, n: int, repeat: int) -> float:
    pattern, value = case(n)
    best = float("inf")
    for _ in range(repeat):
        compile_glob.cache_clear()
        started = time.process_time()
        matched = compile_glob(pattern)(value)
        best = min(best, time.process_time() - started)
        assert matched is name_matches(case)
    return best


def name_matches(case: Case) -> bool:
    return case is star_question_match


def regex_baseline(pairs: list[int]) -> None:
    """The backtracking translation used before: `?` -> `.`, `*` -> `.*`, re.fullmatch."""
    import re

    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for k in pairs:
        regex = re.compile(glob_to_regex("arn:aws:kms:*:*:key/" + "?*" * k + "Z"), re.DOTALL)
        started = time.process_time()
        regex.fullmatch(key)
        print(f"regex, {k} `?*` pairs: {time.process_time() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000, 16000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--regex-baseline",
        type=int,
        nargs="*",
        metavar="PAIRS",
        help="time the old regex translation with this many `?*` pairs instead",
    )
    args = parser.parse_args()
    if args.regex_baseline:
        regex_baseline(args.regex_baseline)
        return
    print("| case | " + " | ".join(f"n={n:,}" for n in args.sizes) + " | µs/char (first → last) |")
    print("| --- | " + " | ".join("---:" for _ in args.sizes) + " | ---: |")
    for name, case in CASES.items():
        seconds = [measure(case, n, args.repeat) for n in args.sizes]
        cells = " | ".join(f"{s * 1000:.2f} ms" for s in seconds)
        per_char = [s / n * 1e6 for s, n in zip(seconds, args.sizes, strict=True)]
        print(f"| `{name}` | {cells} | {per_char[0]:.3f} → {per_char[-1]:.3f} |")


if __name__ == "__main__":
    main()
