"""Small modules with one job: no module in orchestrator/ is longer than 500 lines.

A module that grows past it is split by job (as `serving/api_docs.py` was into its bodies,
its operations and the document builder), not granted an exception. The request executor
(`serving/executor.py`) stays under 300: its parts (load book, budget gate, request run...)
have modules of their own.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 500
# the request executor keeps only the path top to bottom; its parts live in their own modules
EXECUTOR = "orchestrator/serving/executor.py"
EXECUTOR_BELOW = 300


def line_count(text: str) -> int:
    """Lines as `wc -l` counts them for a file that ends with a newline."""
    return len(text.splitlines())


def over_limit(root: Path, limit: int = LIMIT) -> dict[str, int]:
    """Path (relative to `root`) -> line count, for each .py file under root/orchestrator
    longer than `limit`."""
    found = {}
    for path in sorted((root / "orchestrator").rglob("*.py")):
        lines = line_count(path.read_text())
        if lines > limit:
            found[path.relative_to(root).as_posix()] = lines
    return found


def test_no_module_is_over_the_limit():
    assert over_limit(ROOT) == {}


def test_the_executor_remainder_is_under_300_lines():
    assert line_count((ROOT / EXECUTOR).read_text()) < EXECUTOR_BELOW


def test_a_long_module_is_found(tmp_path):
    package = tmp_path / "orchestrator" / "sub"
    package.mkdir(parents=True)
    (package / "long.py").write_text("x = 1\n" * (LIMIT + 1))
    (package / "short.py").write_text("x = 1\n" * LIMIT)
    assert over_limit(tmp_path) == {"orchestrator/sub/long.py": LIMIT + 1}
