"""`orchestrator simulate` on a JSONL trace: --json shape, --report files, bad input."""

from __future__ import annotations

import json

from orchestrator.cli import main
from orchestrator.paths import PROJECT_ROOT
from orchestrator.simulate.traffic import load_jsonl, rescale

from .conftest import POLICY_TEXT, make_requests

GPU = str(PROJECT_ROOT / "deployments" / "gpu-example.yaml")


def _trace(tmp_path, n=60):
    path = tmp_path / "trace.jsonl"
    with path.open("w") as f:
        for r in make_requests(n=n):
            f.write(
                json.dumps(
                    {
                        "arrival_s": r.arrival_s,
                        "messages": r.body["messages"],
                        "output_tokens": r.output_tokens,
                        "tier": r.tier,
                    }
                )
                + "\n"
            )
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_TEXT)
    return str(path), str(policy)


def test_json_and_report(tmp_path, capsys):
    trace, policy = _trace(tmp_path)
    report = tmp_path / "rep"
    rc = main(
        [
            "simulate",
            "--trace",
            trace,
            "--deployments",
            GPU,
            "--policy",
            policy,
            "--baselines",
            "static,queue",
            "--json",
            "--report",
            str(report),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["policies"]) == {"ours", "oracle", "static", "queue"}
    assert out["policies"]["static"]["requests"] == 60
    for f in ("report.md", "result.json", "cost_vs_slo.png", "ttft.png", "replicas_ours.png"):
        assert (report / f).stat().st_size > 0, f
    assert "| ours |" in (report / "report.md").read_text()


def test_bad_baseline_is_an_error(tmp_path, capsys):
    trace, policy = _trace(tmp_path, n=5)
    rc = main(
        [
            "simulate",
            "--trace",
            trace,
            "--deployments",
            GPU,
            "--policy",
            policy,
            "--baselines",
            "magic",
        ]
    )
    assert rc == 2
    assert "unknown baseline" in capsys.readouterr().err


def test_jsonl_loader_and_rate_scaling(tmp_path):
    trace, _ = _trace(tmp_path, n=40)
    reqs = load_jsonl(trace)
    assert len(reqs) == 40 and reqs[0].arrival_s == 0.0
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(reqs, reqs[1:], strict=False))
    assert len(rescale(reqs, rate_scale=3.0)) == 120
    half = rescale(reqs, duration_s=reqs[20].arrival_s)
    assert len(half) == 20


def test_limits_scale_with_the_rate(catalog, policy):
    from orchestrator.simulate.limits import scale_limits

    cat, pol = scale_limits(catalog, policy, 10)
    for p in catalog.profiles:
        assert cat.profile(p.name).replicas.max == p.replicas.max * 10
        assert pol.scaling[p.name].min_replicas == policy.scaling[p.name].min_replicas
    assert scale_limits(catalog, policy, 1.0) == (catalog, policy)
