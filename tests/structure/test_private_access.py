"""Tests go through public interfaces: no test reads or sets a private attribute of a production
object, and fixtures are shared through conftest.py, not through `__wrapped__`.

A *production private name* is a `_name` (not a dunder) that orchestrator/ defines: a function,
method or class, a module-level name, or an attribute it assigns on `self`. A test file uses one
when it reads or writes `x._name` (x not `self`/`cls`, not a name the file imported from
outside orchestrator, and `_name` not defined by the file itself), or names it in a
`setattr`/`monkeypatch.setattr` call (as the attribute, or as the last part of a dotted
target such as `"orchestrator.x._name"`).

ALLOWED (by file and name, each with its reason) is empty: production code offers a public
reader for what a test needs to see; an entry would be a documented test hook.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ALLOWED: dict[tuple[str, str], str] = {}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined(tree: ast.AST) -> set[str]:
    """Private names a module defines (functions, classes, assignments, `self._x = ...`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if _private(n)}


def production_private_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "orchestrator").rglob("*.py"):
        names |= _defined(ast.parse(path.read_text(), str(path)))
    return names


def _ours(module: str | None) -> bool:
    return (module or "").startswith("orchestrator")


def _outside_imports(tree: ast.AST) -> set[str]:
    """Local names bound by imports of modules outside orchestrator (Ray, the stdlib...)."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {
                (a.asname or a.name.split(".")[0])
                for a in node.names
                if not a.name.startswith("orchestrator")
            }
        elif isinstance(node, ast.ImportFrom) and not node.level and not _ours(node.module):
            bound |= {a.asname or a.name for a in node.names}
    return bound


def private_uses(source: str, production: set[str]) -> list[tuple[int, str]]:
    """(line, name) of each production private name the test source uses, and of each
    `__wrapped__` it reads."""
    tree = ast.parse(source)
    own = _defined(tree)
    outside = _outside_imports(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "__wrapped__":
                found.append((node.lineno, node.attr))
            elif node.attr in production and node.attr not in own:
                base = node.value
                if isinstance(base, ast.Name) and base.id in ({"self", "cls"} | outside):
                    continue
                found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("setattr"):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    name = arg.value.rsplit(".", 1)[-1]
                    if name in production and name not in own:
                        found.append((node.lineno, name))
    return found


def test_tests_use_no_private_attribute_of_production_objects():
    production = production_private_names()
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        found += [
            f"{rel}:{line}: {name}"
            for line, name in private_uses(path.read_text(), production)
            if (rel, name) not in ALLOWED
        ]
    assert found == []


def test_each_kind_of_use_is_found():
    production = {"_state", "_helper", "_x"}
    source = (
        "from ray import serve\n"
        "from orchestrator import thing\n"
        "def fixture(): ...\n"
        "class Fake:\n"
        "    def __init__(self):\n"
        "        self._x = 1\n"
        "def test(monkeypatch, obj):\n"
        "    obj._state\n"  # 8: a production private attribute
        "    thing._helper()\n"  # 9
        "    monkeypatch.setattr(thing, '_helper', None)\n"  # 10
        "    serve._state\n"  # Ray's, not ours
        "    Fake()._x\n"  # the test's own
        "    fixture.__wrapped__()\n"  # 13
        "    monkeypatch.setattr('orchestrator.thing._helper', None)\n"  # 14: dotted target
    )
    assert sorted(private_uses(source, production)) == [
        (8, "_state"),
        (9, "_helper"),
        (10, "_helper"),
        (13, "__wrapped__"),
        (14, "_helper"),
    ]
