"""Replaying a decision log written through the store API (no shared data needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.decisionlog import DecisionInputs, DecisionLog
from orchestrator.ledger import UsageLedger
from orchestrator.ledger.records import UsageRecord
from orchestrator.paths import PROJECT_ROOT
from orchestrator.predict.schema import Prediction
from orchestrator.routing.types import Decision, Rejection
from orchestrator.simulate import simulate
from orchestrator.simulate.decision_trace import load_decision_log
from orchestrator.simulate.traffic import load_traffic, sniff
from tests.predictions import prediction

from .conftest import POLICY_TEXT

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
GPU = str(PROJECT_ROOT / "deployments" / "gpu-example.yaml")


def _prediction(p50: int, prompt: int = 300) -> Prediction:
    return prediction(
        prompt_tokens=prompt, p50_tokens=p50, p90_tokens=3 * p50, reasoning_probability=0.1
    )


def _routed(profile: str, p50: int) -> Decision:
    return Decision(action="route", profile=profile, reason=f"route {profile}",
                    query_class="standard", predicted_tokens=(p50, 3 * p50))  # fmt: skip


def _refused(p50: int) -> Decision:
    return Decision(action="reject", profile=None, reason="reject 503: latency_slo_unmeetable",
                    query_class="standard", predicted_tokens=(p50, 3 * p50),
                    rejection=Rejection(status=503, code="latency_slo_unmeetable",
                                        message="busy"))  # fmt: skip


@pytest.fixture()
def log_path(tmp_path):
    """One database holding both stores, as the server keeps them: 40 served requests of two
    tenants (ledger rows with the true sizes) and 5 refused ones (no ledger row)."""
    path = tmp_path / "orchestrator.sqlite3"
    with UsageLedger(path) as ledger, DecisionLog(ledger.db) as log:
        for i in range(45):
            rid, tenant, at = f"r{i}", ("chat" if i % 2 else "batch"), T0 + timedelta(seconds=2 * i)
            pred = _prediction(100 + i)
            refused = i >= 40
            decision = _refused(pred.p50_tokens) if refused else _routed("llama8b-fp8-ngram", 100)
            inputs = DecisionInputs(
                prediction=pred, model="auto", max_tokens=2000 if i == 3 else None
            )
            log.put(rid, tenant, decision, inputs=inputs, decided_at=at)
            if not refused:
                ledger.settle(UsageRecord(request_id=rid, tenant=tenant, profile="llama8b-fp8-ngram",
                                          prompt_tokens=250 + i, output_tokens=50 + 7 * i,
                                          cost_usd=0.001, status="ok", started_at=at,
                                          finished_at=at + timedelta(seconds=3)))  # fmt: skip
    return path


def test_rows_become_requests_with_the_logged_truth(log_path):
    assert sniff(log_path) == "decisions"
    trace = load_decision_log(log_path)
    reqs = trace.requests
    assert len(reqs) == 45 and trace.rows_without_usage == 5
    assert [r.arrival_s for r in reqs[:3]] == [0.0, 2.0, 4.0]
    assert [r.tenant for r in reqs[:2]] == ["batch", "chat"]
    served = reqs[7]
    assert (served.prompt_tokens, served.output_tokens) == (257, 99)  # the ledger's, not p50
    assert served.prediction.p50_tokens == 107  # the server's prediction, used as is
    refused = reqs[42]
    assert (refused.prompt_tokens, refused.output_tokens) == (300, 142)  # predicted sizes
    assert reqs[3].body["max_tokens"] == 2000 and "max_tokens" not in reqs[4].body
    window = load_decision_log(log_path, since=T0 + timedelta(seconds=10),
                               until=T0 + timedelta(seconds=20))  # fmt: skip
    assert len(window.requests) == 5 and window.requests[0].arrival_s == 0.0


def test_replay_runs_the_product_on_the_logged_traffic(log_path, policy, catalog):
    reqs = load_traffic(log_path)
    res = simulate(catalog, policy, reqs, policies=("ours",))
    out = res.policies["ours"].outcome
    assert out.served_twice == 0 and all(r != "lost" for r in out.reject_reason)
    m = res.policies["ours"].metrics
    assert m["requests"] == 45
    # the logged p50s reach the router: the prediction error is measured against the ledger
    errors = [abs(r.prediction.p50_tokens - r.output_tokens) / r.output_tokens for r in reqs]
    assert res.prediction["p50_median_relative_error"] == pytest.approx(float(np.median(errors)))


def test_cli_replays_a_decision_log(log_path, tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_TEXT)
    rc = main(["simulate", "--trace", str(log_path), "--deployments", GPU, "--policy",
               str(policy), "--baselines", "static", "--json"])  # fmt: skip
    assert rc == 0
    got = json.loads(capsys.readouterr().out)
    assert got["requests"] == 45 and set(got["policies"]) == {
        "ours",
        "oracle",
        "ours-constant",
        "static",
    }


def test_a_database_without_a_decision_log_is_refused(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    UsageLedger(path).close()
    assert sniff(path) == "ledger"
    with pytest.raises(ValueError, match="holds no decision log"):
        load_decision_log(path)
