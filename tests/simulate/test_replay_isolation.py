"""A replay learns online on a fork of the caller's predictor (`Predictor.fork`): the caller's
predictor is left as it was, so replays sharing one do not depend on their order."""

from __future__ import annotations

from orchestrator.predict import Predictor
from orchestrator.simulate import simulate

from .conftest import make_requests


def _p50s(predictor: Predictor, requests, catalog) -> list[float]:
    profile = catalog.profiles[0]
    return [predictor.predict(r.body, profile).p50_tokens for r in requests[:20]]


def test_a_replay_leaves_the_callers_predictor_and_the_next_replay_alone(catalog, policy):
    predictor = Predictor(store=None)
    reqs = make_requests(n=400, rate=4.0, seed=3)  # 100 s: feedback starts after 30 s
    for r in reqs:
        r.output_tokens = 20 * r.output_tokens  # far from the priors: learning would show
    before = _p50s(predictor, reqs, catalog)
    first = simulate(catalog, policy, reqs, predictor=predictor, policies=("ours",))
    assert _p50s(predictor, reqs, catalog) == before
    second = simulate(catalog, policy, reqs, predictor=predictor, policies=("ours",))
    a, b = first.policies["ours"], second.policies["ours"]
    assert a.metrics == b.metrics
    assert list(a.outcome.reject_reason) == list(b.outcome.reject_reason)


def test_the_fork_learns_and_its_parent_does_not(catalog):
    parent = Predictor(store=None)
    fork = parent.fork()
    profile = catalog.profiles[0]
    body = {"model": "auto", "messages": [{"role": "user", "content": "Explain TCP slow start."}]}
    start = parent.predict(body, profile).p50_tokens
    for _ in range(200):
        fork.observe(profile, fork.predict(body, profile), 4000)
    assert fork.predict(body, profile).p50_tokens > 2 * start
    assert parent.predict(body, profile).p50_tokens == start
