#!/usr/bin/env python3
"""The library's module graph, read from its `use crate::...` / `crate::x::` / `super::` paths.

Prints, for each module (a top-level file or folder under actix-graceful/src, and each module
of the core folders protocol/ and process/), the modules it uses and whether it names an actix
crate; then the import cycles between top-level modules and between the modules of a core
folder, and every core file that names an actix crate. Exits 1 on any of them.

    python3 .ci/layers.py            # the table, the cycles, the rule
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "actix-graceful", "src")
CORE = ("protocol", "process")
ACTIX = re.compile(r"\b(actix_web|actix_rt|actix_http|actix_server|actix_service|actix_ws)\b")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(l.split("//", 1)[0] for l in text.splitlines())


def strip_inline_test_modules(text):
    """Drops `#[cfg(...test...)] mod name { ... }` blocks: their `super::` is the file's own
    module, which this reading does not track (test code may use anything)."""
    out, i = [], 0
    pattern = re.compile(r"#\[cfg\([^\]]*\btest\b[^\]]*\)\]\s*(?:pub(?:\(crate\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return rel  # e.g. ["handoff", "ready"] or ["bind"]


def expand_use(body):
    """`a::{b, c::{d}}` -> [a::b, a::c::d] (enough for our own paths)."""
    body = body.strip()
    m = re.match(r"^([\w:]*?)\{(.*)\}$", body, flags=re.S)
    if not m:
        return [body]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            out += [prefix + q for q in expand_use(p.strip())]
    return out


def paths_in(text, mod):
    found = set()
    for m in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", text, flags=re.S):
        for p in expand_use(re.sub(r"\s+", "", m.group(1))):
            found.add(p)
    for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", text):
        found.add(m.group(1))
    mods = set()
    for p in found:
        segs = [s for s in p.split("::") if s and s != "self"]
        base = list(mod)
        # a mod.rs's module is its folder: `super` from handoff/ready.rs is handoff
        while segs and segs[0] == "super":
            base = base[:-1]
            segs = segs[1:]
        if segs and segs[0] == "crate":
            base, segs = [], segs[1:]
        full = base + segs
        if full:
            mods.add("::".join(full[:2]) if full[0] in CORE else full[0])
    return mods


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
                sccs.append(sorted(comp))

    for n in sorted(graph):
        if n not in index:
            visit(n)
    return sccs


def main():
    # Nodes: the top-level modules, and inside the core folders each of their modules.
    graph, actix, core_violations = {}, set(), []
    for dirpath, _, files in os.walk(ROOT):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            mod = module_of(path)
            if not mod or mod == ["lib"]:
                continue
            node = "::".join(mod[:2]) if mod[0] in CORE and len(mod) > 1 else mod[0]
            text = strip_inline_test_modules(strip_comments(open(path).read()))
            graph.setdefault(node, set()).update(paths_in(text, mod) - {node})
            if ACTIX.search(text):
                actix.add(node)
                if mod[0] in CORE:
                    core_violations.append(os.path.relpath(path, ROOT))
    top = lambda n: n.split("::")[0]
    nodes = set(graph)
    # A use of `process::x` from outside counts as a use of `process::x`; of `process` alone,
    # as a use of the folder's mod.rs.
    known = lambda d: d if d in nodes else (top(d) if top(d) in nodes else None)
    graph = {n: {known(d) for d in ds if known(d) and known(d) != n} for n, ds in graph.items()}
    print("module                    actix  uses")
    for n in sorted(graph):
        print(f"{n:<25} {'yes' if n in actix else 'no':<6} {' '.join(sorted(graph[n]))}")
    collapsed = {}
    for n, ds in graph.items():
        collapsed.setdefault(top(n), set()).update(top(d) for d in ds if top(d) != top(n))
    inner = {n: {d for d in ds if top(d) == top(n)} for n, ds in graph.items() if top(n) in CORE}
    between, within = cycles(collapsed), cycles(inner)
    show = lambda c: "none" if not c else "; ".join(" <-> ".join(x) for x in c)
    print()
    print("cycles between top-level modules:", show(between))
    print("cycles between the modules of a core folder:", show(within))
    present = [c for c in CORE if c in collapsed]
    print(f"core folders ({', '.join(present) or 'none yet'}) naming an actix crate:", ", ".join(core_violations) or "none")
    return 1 if between or within or core_violations else 0


if __name__ == "__main__":
    sys.exit(main())
