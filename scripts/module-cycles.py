#!/usr/bin/env python3
"""Fails when modules of a crate import each other in a cycle.

Usage: python3 scripts/module-cycles.py [CRATE_SRC_DIR ...]   (default: controller/src agent/src)

Each `.rs` file is a module (`a/b.rs` and `a/b/mod.rs` are `a::b`). Every
`crate::x::y` path (in `use` lines, braces included, and inline) and every
`super::` path is an edge from the file's module to the module it names.
Edges are checked at each level of the tree: between top-level modules
(`approvals` -> `dispatch`), and between siblings inside one directory
(`approvals::grant` -> `approvals::release`). A strongly connected component
with more than one module is a cycle: the script prints it with one line of
source per edge and exits 1. With --edges it prints the top-level graph.
"""
import os
import re
import sys


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ()
    return tuple(rel)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(l.split("//")[0] for l in text.splitlines())


def paths_in(text):
    """Yields (line_no, [segments]) for every crate::/super:: path."""
    for no, line in enumerate(text.splitlines(), 1):
        for m in re.finditer(r"\b((?:crate|super|self)(?:::(?:super|self))*)::\{([^}]*)\}", line):
            for item in m.group(2).split(","):
                segs = [s for s in re.findall(r"\w+", item.split(" as ")[0])]
                if segs:
                    yield no, m.group(1).split("::") + segs
        for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", line):
            yield no, m.group(1).split("::")


def resolve(module, segs, known, inline=0):
    """Absolute module path named by segs from inside `module` (the file's own),
    `inline` levels deep in `mod x { ... }` blocks of that file."""
    if segs[0] == "super" and inline:
        # `super` from an inline `mod tests { }` is the file's own module first.
        drop = min(inline, len([x for x in segs if x == "super"]))
        segs = segs[drop:] or ["self"]
        if segs[0] not in ("super", "self"):
            segs = ["self"] + segs
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    else:
        base = list(module)
        rest = list(segs)
        if rest[0] == "self":
            rest = rest[1:]
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
        base = tuple(base)
    # Longest prefix that is a known module.
    best = base
    cur = list(base)
    for s in rest:
        cur.append(s)
        if tuple(cur) in known:
            best = tuple(cur)
        else:
            break
    return best


def tarjan(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def check(root, show_edges):
    files = []
    for d, _, names in os.walk(root):
        files += [os.path.join(d, n) for n in names if n.endswith(".rs")]
    known = {module_of(root, f) for f in files}
    # Each edge with the place it comes from.
    raw = []
    for f in sorted(files):
        m = module_of(root, f)
        text = strip_comments(open(f, encoding="utf-8").read())
        # `mod tests` inside a file belongs to that file's module: fine.
        inline_starts = [i for i, l in enumerate(text.splitlines(), 1)
                         if re.match(r"(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", l)]
        for no, segs in paths_in(text):
            # Inline modules at column 0 (test modules) run to the end of the file.
            depth = len([i for i in inline_starts if i < no])
            target = resolve(m, segs, known, depth)
            if target == () and m != ():
                # An item of the crate root (lib.rs): the root calls every module.
                target = ("<root>",)
            if target != m and target != ():
                raw.append((m, target, f"{os.path.relpath(f)}:{no}"))
        if m == ():
            # The root's `pub mod x;` lines are its edges to its modules.
            for no, line in enumerate(text.splitlines(), 1):
                mm = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", line)
                if mm:
                    raw.append((("<root>",), (mm.group(1),), f"{os.path.relpath(f)}:{no}"))
    bad = 0
    # Level by level: for every pair of modules, the first segment where they
    # differ (under a common parent) gives one edge between siblings.
    levels = {}
    for src, dst, where in raw:
        i = 0
        while i < min(len(src), len(dst)) and src[i] == dst[i]:
            i += 1
        if i >= len(src) or i >= len(dst):
            continue  # a module naming its own parent or child: not a sibling edge
        parent = src[:i]
        a, b = src[: i + 1], dst[: i + 1]
        levels.setdefault(parent, {}).setdefault(a, {}).setdefault(b, where)
    for parent, graph in sorted(levels.items()):
        nodes = set(graph) | {b for bs in graph.values() for b in bs}
        edges = {a: sorted(bs) for a, bs in graph.items()}
        if show_edges and parent == ():
            for a in sorted(graph):
                print(f"  {'::'.join(a)} -> {', '.join('::'.join(b) for b in sorted(graph[a]))}")
        for comp in tarjan(nodes, edges):
            bad += 1
            name = "::".join(parent) or "crate"
            print(f"{root}: cycle under {name}: {' <-> '.join('::'.join(c) for c in comp)}")
            for a in comp:
                for b in graph.get(a, {}):
                    if b in comp:
                        print(f"    {'::'.join(a)} -> {'::'.join(b)}  ({graph[a][b]})")
    return bad


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show = "--edges" in sys.argv
    roots = args or ["controller/src", "agent/src"]
    bad = 0
    for r in roots:
        if show:
            print(f"{r}:")
        bad += check(r, show)
    if bad:
        sys.exit(1)
    print(f"no module import cycles in {', '.join(roots)}")


if __name__ == "__main__":
    main()
