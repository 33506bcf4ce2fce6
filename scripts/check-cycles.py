#!/usr/bin/env python3
"""Fail when the top-level modules of src/ import each other in a cycle.

Why: layering (config -> source -> codec -> store -> catalog -> ... -> commands -> cli) only
holds if nothing below reaches back up. A cycle means two modules cannot be read, tested or
moved apart, which is what issue 14 set out to end.

What counts as an edge a -> b: any path `crate::b...` written in a file of module `a` (the
first path segment after `crate::`; a file's module is the file or folder directly under
src/), whether in a `use` (grouped `use crate::{b::x, c}` gives one edge per branch) or inline
(`crate::b::f()`), and `super::` chains that climb out of `a` to the crate root. Comments and
string literals are skipped (a doc link is not a dependency). lib.rs and main.rs are the root
and have no module.

Test code inside src/ (`#[cfg(test)] mod tests`) counts like any other code: a unit test of a
low module that needs a high one to build its fixture is the same knot, and the fix (move the
shared type down, or move the test up to the module that owns the whole) is the same.

Output: each cycle as its edges, each edge with a file:line witness (`-v`: every witness).
Exit 1 if there is any cycle; otherwise exit 0 and print the module graph.
"""

import os
import re
import sys
from collections import defaultdict, deque

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def strip(text):
    """Blank out comments and string/char literals, keeping newlines so line numbers hold."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join(c if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (c == "r" or text.startswith("br", i)) and re.match(r"b?r#*\"", text[i:]) and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            m = re.match(r"b?r(#*)\"", text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append(blank(m.group(0)))
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def file_module(rel):
    """src-relative path -> (top-level module or None for the root, module depth)."""
    parts = rel.split(os.sep)
    if len(parts) == 1:
        name = parts[0][: -len(".rs")]
        return (None, 0) if name in ("lib", "main") else (name, 1)
    last = parts[-1][: -len(".rs")]
    depth = len(parts) - (1 if last == "mod" else 0)
    return parts[0], depth


def group_heads(s, start):
    """Given s[start] == '{', yield (offset, first identifier) of each top-level branch."""
    depth, i, branch_start = 0, start, start + 1
    while i < len(s):
        ch = s[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if (ch == "," and depth == 1) or depth == 0:
            seg = s[branch_start:i]
            m = IDENT.search(seg)
            if m:
                yield branch_start + m.start(), m.group(0)
            branch_start = i + 1
            if depth == 0:
                return
        i += 1


def edges_of(path, rel):
    module, depth = file_module(rel)
    if module is None:
        return []
    with open(path, encoding="utf-8") as f:
        s = strip(f.read())
    line_at = lambda off: s.count("\n", 0, off) + 1  # noqa: E731
    found = []

    def add(off, target):
        if target not in ("self", "super", "crate") and target != module:
            found.append((target, f"src/{rel}:{line_at(off)}"))

    for m in re.finditer(r"(?<![\w$])crate\s*::\s*", s):
        j = m.end()
        if j < len(s) and s[j] == "{":
            for off, head in group_heads(s, j):
                add(off, head)
        else:
            ident = IDENT.match(s, j)
            if ident:
                add(j, ident.group(0))

    # super:: chains only matter when they climb to the crate root. Inline `mod x {` blocks
    # add depth, so track them by brace nesting.
    mods, brace = [], 0
    token = re.compile(r"\bmod\s+[A-Za-z_]\w*\s*\{|\{|\}|(?<![\w:])(?:super\s*::\s*)+")
    for t in token.finditer(s):
        text = t.group(0)
        if text.startswith("mod"):
            brace += 1
            mods.append(brace)
        elif text == "{":
            brace += 1
        elif text == "}":
            if mods and mods[-1] == brace:
                mods.pop()
            brace -= 1
        else:
            ups = text.count("super")
            if ups >= depth + len(mods):
                ident = IDENT.match(s, t.end())
                if ident:
                    add(t.end(), ident.group(0))
    return [(module, target, where) for target, where in found]


def scan():
    modules = set()
    graph = defaultdict(lambda: defaultdict(list))
    for dirpath, _, files in os.walk(SRC):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, SRC)
            module, _ = file_module(rel)
            if module:
                modules.add(module)
            for a, b, where in edges_of(path, rel):
                graph[a][b].append(where)
    # Drop paths to names that are not modules (an item re-exported at the crate root).
    for a in list(graph):
        for b in list(graph[a]):
            if b not in modules:
                del graph[a][b]
    return modules, graph


def sccs(nodes, graph):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def shortest_path(graph, comp, src, dst):
    prev, queue = {src: None}, deque([src])
    while queue:
        v = queue.popleft()
        if v == dst:
            path = []
            while v is not None:
                path.append(v)
                v = prev[v]
            return path[::-1]
        for w in sorted(graph[v]):
            if w in comp and w not in prev:
                prev[w] = v
                queue.append(w)
    return None


def cycles_in(graph, comp):
    """One shortest cycle through every edge of the component, deduplicated."""
    seen, out = set(), []
    for a in comp:
        for b in sorted(graph[a]):
            if b not in comp:
                continue
            back = shortest_path(graph, comp, b, a)
            cycle = [a] + back[:-1]
            k = cycle.index(min(cycle))
            key = tuple(cycle[k:] + cycle[:k])
            if key not in seen:
                seen.add(key)
                out.append(list(key))
    return sorted(out, key=lambda c: (len(c), c))


def main():
    verbose = "-v" in sys.argv[1:]
    modules, graph = scan()
    knots = [c for c in sccs(modules, graph) if len(c) > 1]
    if not knots:
        print(f"no import cycles between the {len(modules)} top-level modules of src/")
        for a in sorted(modules):
            deps = sorted(graph[a])
            print(f"  {a} -> {', '.join(deps) if deps else '(nothing)'}")
        return 0
    count = 0
    for comp in knots:
        print(f"cycle knot: {', '.join(comp)}")
        for cycle in cycles_in(graph, set(comp)):
            count += 1
            print("  cycle: " + " -> ".join(cycle + [cycle[0]]))
            for a, b in zip(cycle, cycle[1:] + cycle[:1]):
                wits = graph[a][b]
                shown = wits if verbose else wits[:1]
                more = "" if verbose or len(wits) == 1 else f" (+{len(wits) - 1} more, -v)"
                print(f"    {a} -> {b}: {', '.join(shown)}{more}")
    print(f"{count} import cycle(s) between top-level modules of src/")
    return 1


if __name__ == "__main__":
    sys.exit(main())
