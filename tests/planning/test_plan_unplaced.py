"""`orchestrator plan` shows the load it cannot place and the limit that binds (issue 33)."""

from __future__ import annotations

import json
import logging

from planning_helpers import catalog, load, policy, profile

from orchestrator.cli import main
from orchestrator.control.alerts import UnplacedAlerter
from orchestrator.paths import PROJECT_ROOT
from orchestrator.planning import Observation, PlannerKnobs, plan

DEPLOYMENTS = PROJECT_ROOT / "deployments" / "gpu-example.yaml"
IDLE_ELSEWHERE = "".join(
    f"  {p}: {{replicas_current: 0}}\n"
    for p in ("llama8b-bf16-eagle3", "llama8b-fp8-ngram", "gpt-oss-20b-mxfp4", "qwen3-235b-fp8",
              "llama70b-gptq-draft", "deepseek-r1-nvfp4-mtp", "qwen3-8b-dflash")
)  # fmt: skip


def run_plan(tmp_path, capsys, policy_body: str, demand: str, *extra: str):
    pol = tmp_path / "policy.yaml"
    pol.write_text("apiVersion: orchestrator/v1\nkind: Policy\n" + policy_body, encoding="utf-8")
    dem = tmp_path / "demand.yaml"
    dem.write_text(demand, encoding="utf-8")
    args = ["plan", "--policy", str(pol), "--deployments", str(DEPLOYMENTS), "--demand", str(dem)]
    code = main([*args, *extra])
    return code, capsys.readouterr().out


def test_demand_beyond_the_accelerators_prints_the_unplaced_share_and_limit(tmp_path, capsys):
    demand = (
        "resources_available: {L4: 4, H100: 0}\n"
        "families:\n  qwen3-8b: {requests_per_s: 40, input_tokens: 800, output_tokens: 400}\n"
        "profiles:\n" + IDLE_ELSEWHERE
    )
    body = "autoscaling: {max_cost_per_hour_usd: 60, scale_up_delay_s: 0}\n"
    code, out = run_plan(tmp_path, capsys, body, demand)
    assert code == 0
    [row] = [ln for ln in out.splitlines() if ln.strip().startswith("UNPLACED")]
    assert "qwen3-8b" in row and "limited by resources" in row and "L4 4 of 4 in use" in row
    awq = next(ln for ln in out.splitlines() if ln.strip().startswith("qwen3-8b-awq"))
    # the share assigned to the profile, not the whole family's load
    code, text = run_plan(tmp_path, capsys, body, demand, "--json")
    [d] = json.loads(text)
    share = d["unplaced"]["qwen3-8b"]["share"]
    assert share > 0.5 and f"{share:.0%}" in row
    t = d["targets"]["qwen3-8b-awq"]
    assert t["target"] == 4 and "resources" in t["limited_by"]
    assert abs(t["assigned_share"] + share - 1.0) < 1e-6  # dflash has no H100
    assert d["targets"]["qwen3-8b-dflash"]["target"] == 0  # no cold start past the H100s
    assert f"{t['assigned_share']:.0%}" in awq and "capped by available accelerators" in awq
    # the ceiling ($60) does not bind at $3.20/hour: no reason may blame it
    assert d["ceiling_binding"] is False and "not binding" in out
    assert "$/hour ceiling" not in out
    assert any(a.startswith("demand unplaced: qwen3-8b") for a in d["alerts"])


def test_max_replicas_is_named_when_it_binds(tmp_path, capsys):
    demand = (
        "families:\n  qwen3-8b: {requests_per_s: 40, input_tokens: 800, output_tokens: 400}\n"
        "profiles:\n" + IDLE_ELSEWHERE
    )
    body = (
        "autoscaling:\n  scale_up_delay_s: 0\n  profiles:\n"
        "    qwen3-8b-awq: {max_replicas: 2}\n    qwen3-8b-dflash: {max_replicas: 1}\n"
    )
    code, out = run_plan(tmp_path, capsys, body, demand)
    [row] = [ln for ln in out.splitlines() if ln.strip().startswith("UNPLACED")]
    assert code == 0 and "limited by max_replicas" in row
    assert "qwen3-8b-awq at max_replicas 2" in row and "qwen3-8b-dflash at max_replicas 1" in row


def test_the_ceiling_is_named_only_when_it_binds():
    cat = catalog(profile("a", price_per_replica_hour_usd=2.0))
    pol = policy(cat, "autoscaling: {max_cost_per_hour_usd: 4, scale_up_delay_s: 0}")
    knobs = PlannerKnobs(use_solver=False)
    d, _ = plan(Observation(now_s=0, profiles={"a": load(20_000)}), pol, None, knobs)
    assert d.ceiling_binding and d.unplaced["fam"].limited_by == ("cost_ceiling",)
    assert "capped by the $/hour ceiling" in d.targets["a"].reason
    d, _ = plan(Observation(now_s=0, profiles={"a": load(500)}), pol, None, knobs)
    assert not d.ceiling_binding and not d.unplaced
    assert "ceiling" not in d.targets["a"].reason


def test_the_controller_logs_unplaced_demand_once(caplog):
    cat = catalog(profile("a", replicas={"max": 1}))
    pol = policy(cat, "autoscaling: {scale_up_delay_s: 0}")
    alerter = UnplacedAlerter()
    d, _ = plan(Observation(now_s=0, profiles={"a": load(20_000)}), pol)
    with caplog.at_level(logging.INFO, logger="orchestrator.controller"):
        alerter.on_decision(d)
        alerter.on_decision(d)  # unchanged: not logged again
        calm, _ = plan(Observation(now_s=1, profiles={"a": load(10)}), pol)
        alerter.on_decision(calm)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "demand unplaced: fam" in warnings[0].getMessage()
    assert "a at max_replicas 1" in warnings[0].getMessage()
    assert any("placed again" in r.getMessage() for r in caplog.records)
