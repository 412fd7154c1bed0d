"""docs/architecture.md's walk of a chat request names real code: every module it names exists
under orchestrator/, every name it puts right after a module is defined in that module, and
every `Class.method` it names is a method of a class defined in orchestrator/.

Read from the source with `ast` (nothing is imported). A word after a module that is prose,
not a name, goes into PROSE.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "orchestrator"
PROSE = {"and", "counts", "on", "over", "under"}
_MODULE = r"(?<![\w/.])((?:[a-z_]+/)*[a-z_]+\.py)\b"
_NAMED = re.compile(_MODULE + r"[ \t]+([A-Za-z_]\w*(?:\.\w+)?)")
_METHOD = re.compile(r"\b([A-Z]\w+)\.([a-z_]\w*)\b")


def request_walk(markdown: str) -> str:
    """The first code block of the `## Request path` section."""
    section = markdown.split("## Request path", 1)[1]
    return section.split("```", 2)[1]


def defined(path: Path) -> dict[str, set[str]]:
    """Top-level names of a module (imports included) -> their methods (classes only)."""
    names: dict[str, set[str]] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {
                m.name for m in node.body if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
            }
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names[node.name] = set()
        elif isinstance(node, ast.Assign):
            names |= {t.id: set() for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = set()
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(a.asname or a.name).split(".")[0]: set() for a in node.names}
    return names


def _has(names: dict[str, set[str]], name: str) -> bool:
    owner, _, member = name.partition(".")
    return owner in names and (not member or member in names[owner])


def walk_problems(walk: str, package: Path) -> list[str]:
    problems = []
    for module in sorted(set(re.findall(_MODULE, walk))):
        if not (package / module).is_file():
            problems.append(f"no module orchestrator/{module}")
    for module, name in _NAMED.findall(walk):
        path = package / module
        if name not in PROSE and path.is_file() and not _has(defined(path), name):
            problems.append(f"orchestrator/{module} defines no {name}")
    classes: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for owner, members in defined(path).items():
            if members:
                classes.setdefault(owner, set()).update(members)
    for owner, member in sorted(set(_METHOD.findall(walk))):
        if member not in classes.get(owner, set()):
            problems.append(f"no method {owner}.{member} in orchestrator/")
    return problems


def test_the_request_walk_names_real_code():
    walk = request_walk((ROOT / "docs" / "architecture.md").read_text())
    assert walk_problems(walk, PACKAGE) == []


def test_a_wrong_name_in_the_walk_is_found(tmp_path):
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "plan.py").write_text(
        "class EnginePlan:\n    def apply(self): ...\n\ndef plan(): ...\n"
    )
    walk = (
        "1 PLAN serving/plan.py plan: EnginePlan.apply and serving/plan.py and more\n"
        "2 GONE serving/gone.py\n"
        "3 RENAMED serving/plan.py engine_plan, EnginePlan.switch\n"
    )
    assert walk_problems(walk, tmp_path) == [
        "no module orchestrator/serving/gone.py",
        "orchestrator/serving/plan.py defines no engine_plan",
        "no method EnginePlan.switch in orchestrator/",
    ]
