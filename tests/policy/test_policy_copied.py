"""A shipped policy copied elsewhere: its relative `catalog:` hint is reported at its line,
with the path it resolved to and the way out."""

from __future__ import annotations

import shutil

from policy_helpers import GPU_CATALOG

from orchestrator.cli import main
from orchestrator.paths import PROJECT_ROOT


def test_a_copied_policy_names_its_catalog_line_and_the_fix(tmp_path, capsys):
    copy = tmp_path / "team" / "policy.yaml"
    copy.parent.mkdir()
    shutil.copy(PROJECT_ROOT / "policies" / "gpu-example.yaml", copy)
    line = next(
        i for i, ln in enumerate(copy.read_text().splitlines(), 1) if ln.startswith("catalog:")
    )
    assert main(["policy", "validate", str(copy)]) == 1
    out = capsys.readouterr().out
    expected = str(tmp_path / "deployments" / "gpu-example.yaml")
    assert f"{copy}:{line}: catalog: ../deployments/gpu-example.yaml resolves to {expected}" in out
    assert "--deployments FILE" in out and "is invalid" not in out
    assert main(["policy", "validate", str(copy), "--deployments", str(GPU_CATALOG)]) == 0
    # the hint is relative to the policy file: a catalog moved along with it is found
    (tmp_path / "deployments").mkdir()
    shutil.copy(GPU_CATALOG, tmp_path / "deployments" / "gpu-example.yaml")
    assert main(["policy", "validate", str(copy)]) == 0
