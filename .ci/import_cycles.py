#!/usr/bin/env python3
"""Fails when the files of src/ import each other in a circle.

Each file is a module (`worker/fetch.rs` is `worker::fetch`, `worker/mod.rs` is `worker`, lib.rs
the crate root). A file imports another when, outside its test module and comments, it names a
path into it: `crate::…`, `super::…`, `self::…` (in `use` trees too), or a child module by name
(`fetch::Slot` in `worker/mod.rs`). Macros (`crate::say!`) are not imports. The graph must be a
DAG; each strongly connected set of more than one file is printed, and the exit code is 1.

Usage: import_cycles.py SRC_DIR
"""
import os
import re
import sys


def modules(root):
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), root)
            if rel == "main.rs":
                continue
            path = rel[: -len(".rs")]
            if path == "lib":
                module = ""
            else:
                module = re.sub(r"/mod$", "", path).replace("/", "::")
            found[module] = os.path.join(folder, name)
    return found


def imports(module, text, files):
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"\b(?:crate|super|self)(?:::\w+)*::\w+!", "", text)
    here = module.split("::") if module else []

    def absolute(path):
        parts = path.split("::")
        base = list(here)
        if parts[0] == "crate":
            base, parts = [], parts[1:]
        elif parts[0] == "self":
            parts = parts[1:]
        else:
            while parts and parts[0] == "super":
                base, parts = base[:-1], parts[1:]
        return "::".join(base + parts)

    def file_of(path):
        parts = path.split("::")
        while parts:
            if "::".join(parts) in files:
                return "::".join(parts)
            parts = parts[:-1]
        return ""

    targets = set()
    for found in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        targets.add(file_of(absolute(found.group(1))))
    for found in re.finditer(r"use\s+((?:crate|super|self)(?:::\w+)*)::\{([^;]*)\};", text, re.S):
        for item in found.group(2).split(","):
            first = item.strip().split("::")[0].strip("{ ")
            if first:
                targets.add(file_of(absolute(found.group(1) + "::" + first)))
    for found in re.finditer(r"(?<![:\w])(\w+)::", text):
        child = (module + "::" if module else "") + found.group(1)
        if child in files:
            targets.add(child)
    targets.discard(module)
    return targets


def circles(graph):
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return found


def main():
    files = modules(sys.argv[1])
    graph = {m: imports(m, open(p, encoding="utf-8").read(), files) for m, p in files.items()}
    found = circles(graph)
    for group in found:
        print("import circle: " + ", ".join(m or "lib" for m in group))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
