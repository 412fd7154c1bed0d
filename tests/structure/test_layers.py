"""No import cycle in orchestrator/ (files or packages) and no import of a higher layer.

The layers are the list in docs/architecture.md ("Layers"); the graph is read from the source
(`source_graph`), so files moving between packages need no change here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.structure.source_graph import (
    cycles,
    graph_of,
    import_edges,
    modules,
    read_layers,
    unit,
    upward_imports,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "orchestrator"

# packages of one layer that must not import each other, and why
APART: dict[tuple[str, str], str] = {
    ("simulate", "serving"): "the simulator calls the request core (request/), not the server",
    ("serving", "simulate"): "the server does not run the simulator",
}


@pytest.fixture(scope="module")
def edges():
    return import_edges(ROOT, PACKAGE)


@pytest.fixture(scope="module")
def layers():
    return read_layers(ROOT / "docs" / "architecture.md")


def test_no_import_cycle_between_files(edges):
    assert cycles(graph_of(edges)) == []


def test_no_import_cycle_between_packages(edges):
    assert cycles(graph_of(edges, key=unit)) == []


def test_every_package_has_a_layer(layers):
    units = {unit(m) for m in modules(ROOT, PACKAGE)}
    assert sorted(units - set(layers)) == []


def test_no_import_of_a_higher_layer(edges, layers):
    assert upward_imports(edges, layers) == []


def test_packages_kept_apart_do_not_import_each_other(edges):
    found = [
        f"{e.path.relative_to(ROOT)}:{e.line}: {e.source} imports {e.target}"
        for e in edges
        if (unit(e.source), unit(e.target)) in APART
    ]
    assert found == []


# ----- the checker itself, on a package written for the test ----------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_a_function_local_import_is_found(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low/__init__.py": "",
            "pkg/low/a.py": "def f():\n    from pkg.high import b\n",
            "pkg/high/__init__.py": "",
            "pkg/high/b.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from ..low.a import f\n",
        },
    )
    found = import_edges(tmp_path, "pkg")
    assert cycles(graph_of(found)) == [["pkg.high.b", "pkg.low.a"]]
    assert cycles(graph_of(found, key=unit)) == [["high", "low"]]
    layers = {"pkg": 1, "low": 2, "high": 3}
    assert upward_imports(found, {"pkg": 1, "low": 2, "high": 2}) == []  # one layer: allowed
    assert [e.split(": ", 1)[1] for e in upward_imports(found, layers)] == [
        "pkg.low.a (layer 2) imports pkg.high.b (layer 3)"
    ]
    assert upward_imports(found, layers, {("low", "high")}) == []


def test_from_package_import_module_is_an_edge_to_the_module(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import x\n",
            "pkg/a.py": "x = 1\n",
            "pkg/b.py": "from pkg import a\nfrom pkg import x\n",
        },
    )
    found = {(e.source, e.target) for e in import_edges(tmp_path, "pkg")}
    assert found == {("pkg", "pkg.a"), ("pkg.b", "pkg.a"), ("pkg.b", "pkg")}


def test_the_layer_list_is_read_from_the_doc(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("x\n<!-- layers -->\n```text\n 2  cli serve   the top\n 1  base\n```\n")
    assert read_layers(doc) == {"cli": 2, "serve": 2, "base": 1}
