"""The server does not write the process environment at run time to steer defaults elsewhere:
paths are passed explicitly (e.g. the ingress's state dir to the predictor and the ledger).

Allowed, each for its reason: the CLI (`cli/`: sets what it hands to Ray before starting it),
profiling (`profiling/engine.py`: applies a profile's engine environment to its own measuring
process and restores it), the model converter (`models/pypi_gguf.py`: keeps transformers
offline while it converts a shipped GGUF; nothing at run time reads it back), the predictor's
offline training (`predict/offline/`: the same, for the models it fits from).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "orchestrator/cli",
    "orchestrator/profiling/engine.py",
    "orchestrator/models/pypi_gguf.py",
    "orchestrator/predict/offline",
}
_WRITERS = {"update", "setdefault", "pop", "clear", "__setitem__", "__delitem__"}


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def env_writes(source: str) -> list[int]:
    """Lines that assign, delete or mutate `os.environ`, or call `os.putenv`/`os.unsetenv`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
            targets = node.targets if not isinstance(node, ast.AugAssign) else [node.target]
        if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if (func.attr in _WRITERS and _is_environ(func.value)) or func.attr in {
                "putenv",
                "unsetenv",
            }:
                lines.append(node.lineno)
    return lines


def test_no_environment_writes_outside_the_allowed_places():
    found = []
    for path in sorted((ROOT / "orchestrator").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if any(rel == a or rel.startswith(a + "/") for a in ALLOWED):
            continue
        found += [f"{rel}:{line}" for line in env_writes(path.read_text())]
    assert found == []


def test_each_kind_of_write_is_found():
    source = (
        "import os\n"
        "os.environ['A'] = '1'\n"
        "os.environ.setdefault('B', '1')\n"
        "del os.environ['C']\n"
        "os.putenv('D', '1')\n"
        "x = os.environ.get('E')\n"
    )
    assert sorted(env_writes(source)) == [2, 3, 4, 5]
