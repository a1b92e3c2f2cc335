#!/usr/bin/env python3
"""Fails if a crate's modules import each other in a circle.

For each crate under crates/, every top-level module (a file or directory under src/, lib.rs
excepted: it is the facade that declares them) is a node; module A depends on module B when a
file of A names `crate::B`. A child's `super::` is structure, not a dependency. Prints each
cycle found and exits 1, or prints the number of modules and edges checked.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
NAMED = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def top_module(src, path):
    rel = path.relative_to(src)
    name = rel.parts[0]
    return name[:-3] if name.endswith(".rs") else name


def strip_comments(text):
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def graph(src):
    edges = {}
    modules = set()
    for path in sorted(src.rglob("*.rs")):
        module = top_module(src, path)
        if module in ("lib", "main"):
            continue
        modules.add(module)
        text = strip_comments(path.read_text())
        named = set(NAMED.findall(text))
        for group in USE_GROUP.findall(text):
            named.update(re.findall(r"(?:^|[,{\s])([a-z_][a-z0-9_]*)\s*(?:::|,|}|$)", group))
        edges.setdefault(module, set()).update(named)
    return modules, {m: {d for d in deps if d in modules and d != m} for m, deps in edges.items()}


def cycles(modules, edges):
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                found.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(modules):
        if node not in state:
            visit(node)
    return found


def main():
    failed = False
    checked = 0
    for src in sorted(ROOT.glob("crates/*/src")):
        modules, edges = graph(src)
        checked += len(modules)
        for cycle in cycles(modules, edges):
            failed = True
            print(f"{src.parent.name}: import cycle: {' -> '.join(cycle)}")
    if failed:
        sys.exit(1)
    print(f"no import cycles among {checked} modules")


if __name__ == "__main__":
    main()
