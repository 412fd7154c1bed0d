"""`orchestrator policy validate|explain|diff|schema`: exit codes and output."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from policy_helpers import GPU_CATALOG, policy_text, write

from orchestrator.cli import main
from orchestrator.paths import PROJECT_ROOT

POLICIES = PROJECT_ROOT / "policies"
EXAMPLES = POLICIES / "examples"
ISSUE_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<field>\S+): (?P<reason>.+)$")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["policy", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_shipped_policies_passes(capsys):
    code, out, _ = run(capsys, "validate", str(POLICIES), str(EXAMPLES))
    assert code == 0
    assert "default.yaml: ok (catalog" in out
    assert "local.yaml" in out and "gpu-example.yaml" in out
    shipped = list(POLICIES.glob("*.yaml")) + list(EXAMPLES.glob("*.yaml"))
    assert out.count(": ok (") == len(shipped)


def test_validate_reports_every_error_as_file_line_field_reason(tmp_path, capsys):
    text = policy_text(
        """
        defaults:
          cost_cap_usd: 0
          actions: {on_cost_cap: [reject, downgrade]}
        tenants:
          - name: acme
            api_keys: [sk-inline]
        """
    )
    path = write(tmp_path, text)
    code, out, err = run(capsys, "validate", str(path), "--deployments", str(GPU_CATALOG))
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 3
    parsed = [ISSUE_LINE.match(ln) for ln in lines]
    assert all(parsed), lines
    assert [(m["file"], int(m["line"]), m["field"]) for m in parsed] == [
        (str(path), 4, "defaults.cost_cap_usd"),
        (str(path), 5, "defaults.actions.on_cost_cap"),
        (str(path), 8, "tenants[0].api_keys[0]"),
    ]
    assert "3 error(s)" in err


def test_validate_cross_checks_need_the_right_catalog(capsys):
    # the premium example names GPU profiles: against the local catalog they are unknown
    code, out, _ = run(
        capsys,
        "validate",
        str(EXAMPLES / "premium.yaml"),
        "--deployments",
        str(PROJECT_ROOT / "deployments" / "local.yaml"),
    )
    assert code == 1
    assert "unknown profile 'llama8b-bf16-eagle3'" in out


def test_validate_mixed_good_and_bad_files(tmp_path, capsys):
    good = write(tmp_path, policy_text(""), "good.yaml")
    bad = write(tmp_path, policy_text("oops: 1\n"), "bad.yaml")
    code, out, err = run(capsys, "validate", str(good), str(bad), "--deployments", str(GPU_CATALOG))
    assert code == 1
    assert f"{good}: ok" in out
    assert f"{bad}:3: oops: unknown field" in out
    assert "1 of 2 file(s) invalid" in err


def test_validate_directory_is_not_recursive_and_reads_yml(tmp_path, capsys):
    write(tmp_path, policy_text(""), "a.yml")
    (tmp_path / "nested").mkdir()
    write(tmp_path / "nested", "not: a policy\n", "b.yaml")
    (tmp_path / "README.md").write_text("# not yaml")
    code, out, _ = run(capsys, "validate", str(tmp_path), "--deployments", str(GPU_CATALOG))
    assert code == 0, out
    assert out.count(": ok (") == 1


def test_validate_empty_directory_and_missing_file(tmp_path, capsys):
    code, out, _ = run(capsys, "validate", str(tmp_path), str(tmp_path / "missing.yaml"))
    assert code == 1
    assert f"{tmp_path}:1: <dir>: no *.yaml or *.yml files" in out
    assert f"{tmp_path / 'missing.yaml'}:1: <file>: cannot read" in out


def test_validate_bad_catalog_hint(tmp_path, capsys):
    path = write(tmp_path, policy_text("catalog: nowhere.yaml\n"))
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 1
    resolved = tmp_path / "nowhere.yaml"
    assert f"{path}:3: catalog: nowhere.yaml resolves to {resolved}" in out
    assert "which is not a file: fix the path or pass --deployments FILE" in out


def test_validate_check_secrets(tmp_path, capsys, monkeypatch):
    path = write(
        tmp_path, policy_text("tenants:\n  - name: a\n    api_keys: [{env: POLICY_TEST_KEY}]\n")
    )
    monkeypatch.delenv("POLICY_TEST_KEY", raising=False)
    assert run(capsys, "validate", str(path), "--deployments", str(GPU_CATALOG))[0] == 0
    code, out, _ = run(
        capsys, "validate", "--check-secrets", str(path), "--deployments", str(GPU_CATALOG)
    )
    assert code == 1
    assert "tenants[0].api_keys[0].env: environment variable POLICY_TEST_KEY is not set" in out
    monkeypatch.setenv("POLICY_TEST_KEY", "k-123")
    assert run(
        capsys, "validate", "--check-secrets", "-q", str(path), "--deployments", str(GPU_CATALOG)
    ) == (0, "", "")


def test_explain_text_and_json(capsys):
    code, out, _ = run(capsys, "explain", str(EXAMPLES / "free-tier.yaml"))
    assert code == 0
    assert "tenant free [keys: file:/var/run/secrets/orchestrator/free-tier-keys]" in out
    assert "=> cheapest meeting the SLO: llama8b-fp8-ngram" in out
    assert "unreachable" in out  # the default tenant: keys are required
    code, out, _ = run(capsys, "explain", str(EXAMPLES / "free-tier.yaml"), "--json")
    data = json.loads(out)
    free = next(t for t in data["tenants"] if t["name"] == "free")
    assert free["always_on"] == {"llama8b-fp8-ngram": 1}
    assert free["min_replicas_usd_per_month"] == pytest.approx(1.80 * 730)


def test_explain_invalid_policy(tmp_path, capsys):
    code, out, _ = run(capsys, "explain", str(write(tmp_path, policy_text("x: 1\n"))))
    assert code == 1 and ": x: unknown field" in out


def test_diff_and_exit_code(tmp_path, capsys):
    old = write(tmp_path, policy_text("defaults:\n  cost_cap_usd: 0.05\n"), "old.yaml")
    new = write(tmp_path, policy_text("defaults:\n  cost_cap_usd: 0.02\n"), "new.yaml")
    args = ["--deployments", str(GPU_CATALOG)]
    code, out, _ = run(capsys, "diff", str(old), str(new), *args)
    assert code == 0
    assert out.strip() == "tenant default (all classes): cost_cap_usd 0.05 -> 0.02"
    assert run(capsys, "diff", str(old), str(new), "--exit-code", *args)[0] == 1
    code, out, _ = run(capsys, "diff", str(old), str(old), "--exit-code", *args)
    assert (code, out.strip()) == (0, "no changes")


def test_schema_stdout_and_file(tmp_path, capsys):
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"apiVersion", "kind", "tenants", "pricing", "autoscaling"} <= set(schema["properties"])
    target = tmp_path / "s.json"
    assert run(capsys, "schema", "-o", str(target))[0] == 0
    assert json.loads(target.read_text()) == schema


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["policy", "validate"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["policy"])
    assert info.value.code == 2


def test_real_process_exit_codes(tmp_path):
    bad = write(tmp_path, policy_text("defaults:\n  max_tokens: 0\n"))
    ok = subprocess.run(
        [sys.executable, "-m", "orchestrator", "policy", "validate", str(POLICIES), str(EXAMPLES)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    failed = subprocess.run(
        [sys.executable, "-m", "orchestrator", "policy", "validate", str(bad)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert failed.returncode == 1
    assert f"{bad}:4: defaults.max_tokens:" in failed.stdout
