#!/usr/bin/env python3
"""Checks the include graph of server/ and common/ (docs/ARCHITECTURE.md, "Modules").

A module is a .c file and its same-named .h (server/shard.c + server/shard.h); a header with
no .c of its own is a module by itself, except a private header <m>_int.h beside a module m
(server/conn_int.h, server/redis_int.h), which is part of m: it holds what the files of m
share, including m.h's types. An edge A -> B means a file of A has
`#include "b.h"` of a header of B. The check fails, naming the files, when:
  - the module graph has a cycle (shard -> coordinator -> shard, as it once had);
  - common/ includes a header of server/ or bench/ (common/ knows nothing of the server);
  - server/ includes a header of bench/;
  - a quoted include names a header found in none of server/, common/ (nor bench/, for the
    two rules above).
Usage: check_includes.py SOURCE_DIR      (exit 0: fine, 1: findings, 2: usage)
       check_includes.py --self-test     (the checks fail on trees built to break them)
"""
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
LAYERS = ("common", "server")  # the graph; bench/ only matters as a forbidden target
# What each layer may include from, in search order (the targets' include directories).
ALLOWED = {"common": ("common",), "server": ("server", "common")}


def module_of(layer, name, files):
    """The module of file name in layer: its stem, or m for a private header m_int.h."""
    stem = name[:-2]
    if name.endswith("_int.h") and ({stem[:-4] + ".c", stem[:-4] + ".h"} & files):
        return (layer, stem[:-4])
    return (layer, stem)


def scan(root):
    """{(layer, stem): set of (layer, stem)} plus a list of findings."""
    headers, files = {}, {}  # layer -> set of header names, of all file names
    for layer in LAYERS + ("bench",):
        d = os.path.join(root, layer)
        files[layer] = set(os.listdir(d)) if os.path.isdir(d) else set()
        headers[layer] = {f for f in files[layer] if f.endswith(".h")}
    graph, findings = {}, []
    for layer in LAYERS:
        d = os.path.join(root, layer)
        for f in sorted(os.listdir(d)):
            if not f.endswith((".c", ".h")):
                continue
            mod = module_of(layer, f, files[layer])
            graph.setdefault(mod, set())
            with open(os.path.join(d, f), encoding="utf-8") as fh:
                text = fh.read()
            for inc in INCLUDE.findall(text):
                name = os.path.basename(inc)
                where = next((l for l in ALLOWED[layer] if name in headers[l]), None)
                if where is None:
                    other = [l for l in LAYERS + ("bench",) if name in headers[l]]
                    if other:
                        findings.append("%s/%s includes %s/%s: %s/ may not include %s/"
                                        % (layer, f, other[0], name, layer, other[0]))
                    else:
                        findings.append("%s/%s includes \"%s\", found nowhere" % (layer, f, inc))
                    continue
                dep = module_of(where, name, files[where])
                if dep != mod:
                    graph[mod].add(dep)
    return graph, findings


def find_cycle(graph):
    """One cycle as a list of modules, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {m: WHITE for m in graph}
    stack = []

    def visit(m):
        color[m] = GREY
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if color.get(d, WHITE) == GREY:
                return stack[stack.index(d):] + [d]
            if color.get(d, WHITE) == WHITE:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        color[m] = BLACK
        return None

    for m in sorted(graph):
        if color[m] == WHITE:
            c = visit(m)
            if c:
                return c
    return None


def check(root):
    graph, findings = scan(root)
    cycle = find_cycle(graph)
    if cycle:
        findings.append("include cycle: " + " -> ".join("%s/%s" % m for m in cycle))
    return graph, findings


def self_test():
    """Builds small trees that break each rule and checks that each is caught."""
    cases = {
        "ok": ({"common/a.h": "", "common/a.c": '#include "a.h"\n',
                "server/b.h": '#include "a.h"\n', "server/b.c": '#include "b.h"\n'}, None),
        "cycle": ({"server/x.h": "", "server/x.c": '#include "y.h"\n',
                   "server/y.h": "", "server/y.c": '#include "x.h"\n'}, "include cycle"),
        "common->server": ({"common/a.c": '#include "s.h"\n', "server/s.h": ""},
                           "common/ may not include server/"),
        "server->bench": ({"server/s.c": '#include "w.h"\n', "bench/w.h": ""},
                          "server/ may not include bench/"),
        "private": ({"server/m.h": "", "server/m_int.h": '#include "m.h"\n',
                     "server/m.c": '#include "m.h"\n#include "m_int.h"\n',
                     "server/m_x.c": '#include "m_int.h"\n'}, None),
        "private cycle": ({"server/m.h": "", "server/m_int.h": '#include "y.h"\n',
                           "server/m.c": '#include "m_int.h"\n',
                           "server/y.h": "", "server/y.c": '#include "m.h"\n'}, "include cycle"),
        "missing": ({"server/s.c": '#include "nope.h"\n'}, "found nowhere"),
    }
    bad = 0
    for name, (files, want) in cases.items():
        with tempfile.TemporaryDirectory() as root:
            for layer in ("common", "server", "bench"):
                os.mkdir(os.path.join(root, layer))
            for path, text in files.items():
                with open(os.path.join(root, path), "w", encoding="utf-8") as fh:
                    fh.write(text)
            _, findings = check(root)
            got = " | ".join(findings)
            ok = (not findings) if want is None else (want in got)
            print("self-test %-15s %s%s" % (name, "ok" if ok else "FAILED", "" if ok else ": " + got))
            bad += not ok
    return 1 if bad else 0


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return self_test()
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    graph, findings = check(argv[1])
    for f in findings:
        print("check_includes: " + f)
    if findings:
        return 1
    edges = sum(len(d) for d in graph.values())
    print("check_includes: %d modules, %d edges, no cycle, layering kept" % (len(graph), edges))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
