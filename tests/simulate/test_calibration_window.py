"""`simulate(calibrate_s=...)`: the first seconds only teach the predictor (a warm start from
traffic outside the measured window); the rest is replayed and measured from time 0."""

from __future__ import annotations

from orchestrator.predict import Predictor
from orchestrator.simulate import prepare, simulate
from orchestrator.simulate.sim_request import split_at

from .conftest import make_requests


def _long(n: int, seed: int):
    reqs = make_requests(n=n, rate=4.0, seed=seed)
    for r in reqs:
        r.output_tokens = 20 * r.output_tokens  # far from the priors: learning shows
    return reqs


def test_split_keeps_the_measured_window_apart_and_on_its_own_clock():
    reqs = make_requests(n=200, rate=4.0, seed=5)
    times = [r.arrival_s for r in reqs]
    before, after = split_at(reqs, 20.0)
    assert len(before) + len(after) == len(reqs)
    assert before and all(r.arrival_s < 0 for r in before)
    assert [r.rid for r in after] == list(range(len(after)))
    assert after[0].arrival_s >= 0 and all(r.arrival_s >= 0 for r in after)
    assert [r.arrival_s for r in reqs] == times  # the caller's list is left as it was
    assert after[0].arrival_s == reqs[len(before)].arrival_s - 20.0


def test_calibration_moves_the_predictions_and_is_not_replayed(catalog, policy):
    reqs = _long(600, seed=7)  # 150 s
    cold = simulate(catalog, policy, list(reqs), predictor=Predictor(store=None),
                    policies=("ours",), feedback_lag_s=None)  # fmt: skip
    warm = simulate(catalog, policy, list(reqs), predictor=Predictor(store=None),
                    policies=("ours",), feedback_lag_s=None, calibrate_s=75.0)  # fmt: skip
    later = [r for r in reqs if r.arrival_s >= 75.0]
    assert len(warm.requests) == len(later) < len(reqs)
    assert warm.policies["ours"].metrics["requests"] == len(later)
    assert len(warm.policies["ours"].outcome.e2e_s) == len(later)
    # the same request is predicted longer after the calibration window taught the fork
    cold_p50 = cold.targets.predicted_p50[-len(later) :]
    assert (warm.targets.predicted_p50 > 2 * cold_p50).mean() > 0.9
    assert any("calibration" in note for note in warm.notes)


def test_prepare_learns_the_calibration_before_the_first_request(catalog):
    reqs = _long(400, seed=9)
    before, after = split_at(reqs, 50.0)
    predictor = Predictor(store=None)
    plain = prepare(catalog, after, predictor, feedback_lag_s=None)
    taught = prepare(catalog, after, predictor, feedback_lag_s=None, calibration=before)
    assert taught.budgets[0].p50_output_tokens > 2 * plain.budgets[0].p50_output_tokens
    again = prepare(catalog, after, predictor, feedback_lag_s=None)  # the caller's is untouched
    assert [b.p50_output_tokens for b in again.budgets] == [
        b.p50_output_tokens for b in plain.budgets
    ]
