#!/usr/bin/env python3
"""The library's module graph, read from its `use crate::...` / `crate::x::` / `super::` paths.

Prints, for each module (a file or folder under actix-graceful/src), the modules it uses and
whether it names an actix crate; then the import cycles between top-level modules, and every
file under a core folder (protocol/, process/) that names an actix crate. Exits 1 if there is
a cycle or a core file that touches actix.

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
            mods.add(full[0])
    return mods


def main():
    graph, actix, core_violations = {}, {}, []
    for dirpath, _, files in os.walk(ROOT):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            mod = module_of(path)
            text = strip_comments(open(path).read())
            top = mod[0] if mod else "lib"
            if top == "lib":
                continue
            deps = paths_in(text, mod) - {top}
            graph.setdefault(top, set()).update(deps)
            if ACTIX.search(text):
                actix.setdefault(top, []).append(os.path.relpath(path, ROOT))
                if top in CORE:
                    core_violations.append(os.path.relpath(path, ROOT))
    names = sorted(graph)
    print("module            actix  uses")
    for n in names:
        print(f"{n:<17} {'yes' if n in actix else 'no':<6} {' '.join(sorted(d for d in graph[n] if d in graph))}")
    # cycles: strongly connected components with more than one module
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

    for n in names:
        if n not in index:
            visit(n)
    print()
    print("cycles between top-level modules:", "none" if not sccs else "; ".join(" <-> ".join(c) for c in sccs))
    present = [c for c in CORE if c in graph]
    print(f"core folders ({', '.join(present) or 'none yet'}) naming an actix crate:", ", ".join(core_violations) or "none")
    return 1 if sccs or core_violations else 0


if __name__ == "__main__":
    sys.exit(main())
