"""A tenant's quality target (per request `min_success`, per tenant `share_of_strongest`) on the
request path: the real predictor's tier_success reaches `decide`, a hard request goes to a
stronger tier than an easy one from the same tenant, and the decision kept for the request
carries the prediction's tier_success.

`RequestExecutor` with the real policy loader, predictor (difficulty model included), router and
ledger; the local CPU catalog with one profile relabelled `medium` (tiers are labels there);
a fake engine handle.
"""

from __future__ import annotations

import pytest

from orchestrator.catalog.schema import Catalog
from orchestrator.predict import Predictor
from orchestrator.serving.executor import RequestExecutor
from tests.serving.conftest import FAMILY, LOCAL, blue_completion, make_executor, serve_body

EASY = "Name a colour."
HARD = (
    "Statement 1 | Every group of order 42 has a normal subgroup of order 7. Statement 2 | "
    "Every group of order 42 has a normal subgroup of order 8.\nA. True, True\nB. False, "
    "False\nC. True, False\nD. False, True\nAnswer:"
)
POLICY = """\
apiVersion: orchestrator/v1
kind: Policy
default_tenant:
  name: default
  quality_target: {TARGET}
"""
PLAIN = POLICY.replace("  quality_target: {TARGET}\n", "")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(store=None)


def _two_tier_catalog(small: str) -> Catalog:
    profiles = [
        p
        if p.name == small
        else p.model_copy(update={"quality": p.quality.model_copy(update={"tier": "medium"})})
        for p in LOCAL.profiles
    ]
    return LOCAL.model_copy(update={"profiles": profiles})


@pytest.fixture
def executor(tmp_path, monkeypatch, predictor):
    built: list[RequestExecutor] = []

    def build(catalog: Catalog, policy_text: str) -> RequestExecutor:
        folder = tmp_path / str(len(built))
        folder.mkdir()
        ex = make_executor(folder, monkeypatch, catalog=catalog, policy_text=policy_text)
        ex.predictor = predictor  # the real one: tier_success from the difficulty model
        built.append(ex)
        return ex

    yield build
    for ex in built:
        ex.ledger.close()


async def _route(ex: RequestExecutor, text: str, engine_stream, rid: str) -> str:
    ex.handle.streams.append(engine_stream([blue_completion()]))
    body = {"model": FAMILY, "messages": [{"role": "user", "content": text}]}
    response = await serve_body(ex, body, "chat", {"x-request-id": rid})
    assert response.status_code == 200
    return response.headers["x-orchestrator-profile"]


@pytest.mark.parametrize(
    "target",
    [
        "{min_success: 0.6}",  # per request: P(success) >= 0.6
        "{share_of_strongest: 0.9}",  # per tenant: >= 0.9 x the strongest usable tier's
    ],
)
async def test_hard_request_goes_to_a_stronger_tier_than_an_easy_one(
    executor, engine_stream, target
):
    plain = executor(LOCAL, PLAIN)
    cheapest = await _route(plain, EASY, engine_stream, "plain")  # where price alone sends it
    catalog = _two_tier_catalog(small=cheapest)
    ex = executor(catalog, POLICY.replace("{TARGET}", target))
    tiers = {p.name: p.quality.tier for p in catalog.profiles}
    # the hard one first: the share target banks nothing before it (an easy request's surplus
    # would let it take the small tier, as the next test shows)
    hard = await _route(ex, HARD, engine_stream, "hard")
    easy = await _route(ex, EASY, engine_stream, "easy")
    assert (tiers[easy], tiers[hard]) == ("small", "medium")
    _tenant, decision = ex.decisions.store.get("hard")
    ts = decision.tier_success
    assert ts is not None and ts["small"] < 0.6 and ts["small"] < 0.9 * ts["medium"]
    assert any(step.startswith("quality:") for step in decision.steps)
    lost = {c.profile: c.lost_because for c in decision.candidates}
    assert "below_quality_target" in lost[cheapest]


async def test_an_easy_requests_surplus_pays_for_a_hard_one(executor, engine_stream):
    """`share_of_strongest` binds over the tenant's traffic: the expected quality easy requests
    bank above 0.9 x the strongest tier's lets a hard one take the small tier, as long as the
    tenant's running share stays >= 0.9."""
    plain = executor(LOCAL, PLAIN)
    cheapest = await _route(plain, EASY, engine_stream, "plain")
    catalog = _two_tier_catalog(small=cheapest)
    ex = executor(catalog, POLICY.replace("{TARGET}", "{share_of_strongest: 0.9}"))
    tiers = {p.name: p.quality.tier for p in catalog.profiles}
    for i in range(6):  # each banks ~0.07; a request may spend a third of the surplus
        assert tiers[await _route(ex, EASY, engine_stream, f"easy{i}")] == "small"
    assert tiers[await _route(ex, HARD, engine_stream, "hard")] == "small"
    account = ex.quality.of("default")
    assert account.slack(0.9) >= 0
    _tenant, decision = ex.decisions.store.get("hard")
    assert any("banked" in step for step in decision.steps)
