"""Private Ray names are used only under orchestrator/raycompat/ (one pinned adapter each).

Outside it no module imports a Ray module or name whose dotted path has a part starting with
`_` (`ray._private`, `ray.serve._private`, `from ray.serve.context import _x`), reads such an
attribute of a name bound to Ray (`ray._private.state`, `serve._run`), or calls, through
`self`, a private member that a Ray base class of its own class defines
(`self._get_configured_serve_handle` in an `OpenAiIngress` subclass).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = ROOT / "orchestrator" / "raycompat"


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and part != "__future__" for part in dotted.split("."))


def _is_ray(module: str | None) -> bool:
    return module is not None and (module == "ray" or module.startswith("ray."))


def _ray_bindings(tree: ast.AST) -> dict[str, str]:
    """Local name -> the Ray module or object it was imported as."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _is_ray(a.name):
                    bound[a.asname or "ray"] = a.name if a.asname else "ray"
        elif isinstance(node, ast.ImportFrom) and not node.level and _is_ray(node.module):
            for a in node.names:
                bound[a.asname or a.name] = f"{node.module}.{a.name}"
    return bound


def _resolve(dotted: str) -> object | None:
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def private_ray_uses(path: Path) -> list[str]:
    """`name: use` for each private Ray name `path` uses."""
    tree = ast.parse(path.read_text(), str(path))
    bound = _ray_bindings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"import {a.name}"
                for a in node.names
                if a.name.startswith("ray") and _private(a.name)
            ]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module == "ray" or node.module.startswith("ray."):
                for a in node.names:
                    if _private(f"{node.module}.{a.name}"):
                        found.append(f"from {node.module} import {a.name}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                found.append(f"{ast.unparse(node)}")
        elif isinstance(node, ast.ClassDef):
            ray_bases = [
                _resolve(bound[b.id])
                for b in node.bases
                if isinstance(b, ast.Name) and b.id in bound
            ]
            for sub in ast.walk(node):
                if (
                    isinstance(sub, ast.Attribute)
                    and sub.attr.startswith("_")
                    and not sub.attr.startswith("__")
                    and isinstance(sub.value, ast.Name)
                    and sub.value.id == "self"
                    and any(base is not None and hasattr(base, sub.attr) for base in ray_bases)
                ):
                    found.append(f"self.{sub.attr} (defined by a Ray base of {node.name})")
    return [f"{path.name}: {f}" for f in found]


def test_private_ray_names_only_in_raycompat():
    found = []
    for path in sorted((ROOT / "orchestrator").rglob("*.py")):
        if ALLOWED not in path.parents:
            found += [f"{path.relative_to(ROOT).parent}/{f}" for f in private_ray_uses(path)]
    assert found == []


def test_each_kind_of_private_use_is_found(tmp_path):
    path = tmp_path / "probe.py"
    source = (
        "import ray\n"
        "import ray._private.state\n"
        "from ray import serve\n"
        "from ray.serve.context import _get_global_client\n"
        "from ray.serve.llm.ingress import OpenAiIngress\n"
        "x = ray._private.state.available_resources_per_node()\n"
        "serve._run(None)\n"
        "ray.nodes()\n"
        "class I(OpenAiIngress):\n"
        "    def f(self):\n"
        "        self._own = 1\n"
        "        return self._get_configured_serve_handle('m')\n"
    )
    path.write_text(source)
    found = [f.split(": ", 1)[1] for f in private_ray_uses(path)]
    assert sorted(found) == sorted(
        [
            "import ray._private.state",
            "from ray.serve.context import _get_global_client",
            "ray._private",
            "serve._run",
            "self._get_configured_serve_handle (defined by a Ray base of I)",
        ]
    )
