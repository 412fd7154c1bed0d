"""`orchestrator plan` on the shipped GPU example catalog and policy (no cluster)."""

from __future__ import annotations

import json

from orchestrator.cli import main
from orchestrator.paths import PROJECT_ROOT

POLICY = PROJECT_ROOT / "policies" / "gpu-example.yaml"
DEPLOYMENTS = PROJECT_ROOT / "deployments" / "gpu-example.yaml"


def write(tmp_path, text):
    path = tmp_path / "demand.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_plan_prints_targets_and_reasons(tmp_path, capsys):
    demand = write(
        tmp_path,
        """
steps:
  - at_s: 0
    families:
      llama-3.1-8b-instruct: {requests_per_s: 20, input_tokens: 800, output_tokens: 300}
  - at_s: 60
    families:
      llama-3.1-8b-instruct: {requests_per_s: 60, input_tokens: 800, output_tokens: 300}
""",
    )
    args = ["plan", "--policy", str(POLICY), "--deployments", str(DEPLOYMENTS), "--demand", demand]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("t=") == 2 and "llama8b-fp8-ngram" in out and "forecast" in out
    assert "idle: no requests" in out
    assert main([*args, "--json"]) == 0
    decisions = json.loads(capsys.readouterr().out)
    first, second = decisions
    fam = [n for n, t in second["targets"].items() if t["family"] == "llama-3.1-8b-instruct"]
    before = sum(first["targets"][n]["ideal"] for n in fam)
    after = sum(second["targets"][n]["target"] for n in fam)
    assert after > before  # 3x the load: more replicas
    assert second["targets"]["llama8b-fp8-ngram"]["reason"]


def test_plan_ceiling_shows_an_alert(tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: orchestrator/v1\nkind: Policy\n"
        "autoscaling: {max_cost_per_hour_usd: 20, scale_up_delay_s: 0}\n",
        encoding="utf-8",
    )
    demand = write(
        tmp_path,
        "families:\n  llama-3.1-8b-instruct: {requests_per_s: 200, output_tokens: 300}\n"
        "profiles:\n"
        + "".join(
            f"  {p}: {{replicas_current: 0}}\n"
            for p in (
                "gpt-oss-20b-mxfp4",
                "qwen3-8b-dflash",
                "qwen3-235b-fp8",
                "qwen3-8b-awq",
                "llama70b-gptq-draft",
                "deepseek-r1-nvfp4-mtp",
            )
        ),  # fmt: skip
    )
    code = main(["plan", "--policy", str(policy), "--deployments", str(DEPLOYMENTS),
                 "--demand", demand])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "ALERT: spend ceiling $20.00/hour binds" in out


def test_plan_names_unknown_families_and_bad_fields(tmp_path, capsys):
    demand = write(tmp_path, "families:\n  nope: {requests_per_s: 1}\n")
    args = ["plan", "--policy", str(POLICY), "--deployments", str(DEPLOYMENTS), "--demand", demand]
    assert main(args) == 1
    assert "family 'nope'" in capsys.readouterr().err
    demand = write(tmp_path, "families:\n  qwen3-8b: {requests_per_s: -1}\n")
    args[-1] = demand
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "demand.yaml:2" in err and "requests_per_s" in err


def test_plan_starts_from_the_policys_initial_replicas(tmp_path, capsys):
    """The first tick's `now` is what `serve` deploys (the policy's initial replicas), not the
    catalog's bare start: the example policy keeps the H100 Llama-8B EAGLE-3 profile cold."""
    from orchestrator.policy.loader import load_policy_for_cli

    policy = load_policy_for_cli(str(POLICY), str(DEPLOYMENTS))
    demand = write(tmp_path, "families:\n  llama-3.1-8b-instruct: {requests_per_s: 1}\n")
    args = ["plan", "--policy", str(POLICY), "--deployments", str(DEPLOYMENTS), "--demand", demand]
    assert main([*args, "--json"]) == 0
    (decision,) = json.loads(capsys.readouterr().out)
    now = {n: t["current"] for n, t in decision["targets"].items()}
    assert now == {n: b.initial_replicas for n, b in policy.scaling.items()}
    assert now["llama8b-bf16-eagle3"] == 0
