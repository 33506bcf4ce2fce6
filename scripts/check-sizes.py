#!/usr/bin/env python3
"""Rooms a newcomer can live in: no source file under src/ over 700 lines and no function
over 80 lines (ARCHITECTURE.md's rules). A function is measured from its `fn` line to the
closing brace at the same indentation, as rustfmt lays code out. Exit 1 with each offender,
largest first; exit 0 otherwise."""

import os
import re
import sys

MAX_FILE, MAX_FN = 700, 80
FN = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def functions(lines):
    """(name, first line, length) of every function body in a rustfmt-formatted file."""
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, name = m.group(1), m.group(7)
        j = i
        while j < len(lines) and not lines[j].rstrip().endswith(("{", ";")):
            j += 1
        if j >= len(lines) or lines[j].rstrip().endswith(";"):
            i = j + 1  # a declaration without a body (trait method)
            continue
        k = j + 1
        while k < len(lines) and lines[k] != indent + "}":
            k += 1
        yield name, i + 1, k - i + 1
        i = k + 1


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    found = []
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, os.path.join(root, ".."))
            lines = open(path, encoding="utf-8").read().split("\n")
            if len(lines) - 1 > MAX_FILE:
                found.append((len(lines) - 1, f"{rel}: {len(lines) - 1} lines (at most {MAX_FILE})"))
            for name, line, n in functions(lines):
                if n > MAX_FN:
                    found.append((n, f"{rel}:{line}: fn {name} is {n} lines (at most {MAX_FN})"))
    for _, text in sorted(found, reverse=True):
        print(text)
    if found:
        print(f"{len(found)} room(s) too big: split them along their seams")
        return 1
    print(f"no file over {MAX_FILE} lines, no function over {MAX_FN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
