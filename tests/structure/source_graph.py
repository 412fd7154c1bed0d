"""The import graph of a package read from its source with `ast` (nothing is imported).

Every `import` statement counts, wherever it stands: module level, inside a function, under
`TYPE_CHECKING`. A module is named by its dotted path (`orchestrator.serving.ingress`; a
package by its `__init__`'s path, `orchestrator.serving`); its *unit* is the first name under
the root (`serving`), or the root itself for the root package's `__init__`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module (the longest prefix of the imported name that is a module)
    path: Path
    line: int


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `root / package`."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _owner(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(root: Path, package: str) -> list[Edge]:
    """Every import of one of the package's modules by another (self-imports dropped)."""
    known = modules(root, package)
    edges = []
    for module, path in known.items():
        is_init = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_init else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # `from pkg import mod` imports the module `pkg.mod` when it is one
                targets = [
                    f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin
                    for a in node.names
                ]
            for target in targets:
                if target != package and not target.startswith(package + "."):
                    continue
                owner = _owner(target, known)
                if owner is not None and owner != module:
                    edges.append(Edge(module, owner, path, node.lineno))
    return edges


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def graph_of(edges: list[Edge], key=lambda m: m) -> dict[str, set[str]]:
    """Adjacency sets of the edges, nodes named by `key(module)` (self-loops dropped)."""
    out: dict[str, set[str]] = {}
    for e in edges:
        a, b = key(e.source), key(e.target)
        if a != b:
            out.setdefault(a, set()).add(b)
    return out


_LAYER_LINE = re.compile(r"^\s*(\d+)\s+(.+?)\s*$")


def read_layers(doc: Path) -> dict[str, int]:
    """unit -> layer number, from the fenced block after the `<!-- layers` comment of `doc`:
    lines `N  unit unit ...  free text` (units are the lowercase words before the text's two
    or more spaces)."""
    text = doc.read_text()
    start = text.index("<!-- layers")
    block = text[text.index("```", start) + 3 :]
    block = block[block.index("\n") + 1 : block.index("```")]
    layers: dict[str, int] = {}
    for line in block.splitlines():
        m = _LAYER_LINE.match(line)
        if not m:
            continue
        names = re.split(r"\s{2,}", m.group(2))[0].split()
        for name in names:
            if name in layers:
                raise ValueError(f"{doc}: {name} is in two layers")
            layers[name] = int(m.group(1))
    return layers


def upward_imports(
    edges: list[Edge], layers: dict[str, int], allowed: set[tuple[str, str]] = frozenset()
) -> list[str]:
    """Imports of a unit in a higher layer (`allowed`: (unit, unit) pairs); imports within a
    layer are allowed (a cycle between packages is caught by `cycles` on the unit graph)."""
    bad = []
    for e in edges:
        a, b = unit(e.source), unit(e.target)
        if a == b or (a, b) in allowed:
            continue
        if layers[b] > layers[a]:
            bad.append(
                f"{e.path}:{e.line}: {e.source} (layer {layers[a]}) imports {e.target} "
                f"(layer {layers[b]})"
            )
    return bad
