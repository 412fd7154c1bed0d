"""The request path on shared state, two "replicas" (executors) over one database, on both
backends: budget holds taken in the ledger after the decision (a hold another replica took
first turns the request into the budget path's 429), the decision readable from the other
replica once the answer is out, `previous_response_id` across replicas, and a request
cancelled while its hold is being taken leaves no hold behind."""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.responses import JSONResponse

from orchestrator.catalog import load_catalog
from orchestrator.decisionlog import DecisionLog
from orchestrator.ledger import UsageLedger
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import load_policy_text
from orchestrator.serving import budget_gate
from orchestrator.serving.executor import RequestExecutor
from orchestrator.serving.shared_responses import SharedResponseStore
from orchestrator.telemetry.metrics import OrchestratorMetrics
from tests.predictions import prediction
from tests.serving.conftest import blue_completion

LOCAL = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")
POLICY = load_policy_text(
    """\
apiVersion: orchestrator/v1
kind: Policy
default_tenant:
  name: default
  max_tokens: 64
  budgets: {per_hour_usd: 1.0}
""",
    "policy.yaml",
    LOCAL,
)
FAMILY = "smollm2-135m-instruct"
BODY = {"model": FAMILY, "messages": [{"role": "user", "content": "Name a colour."}]}


class _Predictor:
    def predict_many(self, body: dict[str, Any], profiles: list[Any]) -> dict[str, Any]:
        return {p.name: prediction(profile=p.name) for p in profiles}

    def observe(self, *args: Any) -> None:
        pass


class _Handle:
    def __init__(self, make_stream: Any) -> None:
        self.make_stream = make_stream
        self.requests: list[Any] = []
        self.chat = SimpleNamespace(remote=self._remote)

    def _remote(self, request: Any, raw_request_info: Any) -> Any:
        self.requests.append(request)
        return self.make_stream([blue_completion()])


def _replica(target: str, engine_stream: Any, offload: Any = asyncio.to_thread) -> RequestExecutor:
    ledger = UsageLedger(target)
    handle = _Handle(engine_stream)
    ex = RequestExecutor(
        catalog=LOCAL,
        policy_source=SimpleNamespace(current=POLICY),
        predictor=_Predictor(),
        ledger=ledger,
        metrics=OrchestratorMetrics(instance_id="test"),
        handles=lambda name: handle,
        ready={p.name: True for p in LOCAL.profiles},
        running={p.name: 1 for p in LOCAL.profiles},
        offload=offload,
        decisions=DecisionLog(ledger.db),
        responses=SharedResponseStore(ledger.db),
    )
    ex.handle = handle
    return ex


async def _serve(ex: RequestExecutor, request_id: str, body: dict | None = None, endpoint="chat"):
    return await ex.serve({}, json.dumps(body or BODY).encode(), endpoint, request_id)


@pytest.fixture
def replicas(db_target, engine_stream):
    made: list[RequestExecutor] = []

    def make(offload: Any = asyncio.to_thread) -> RequestExecutor:
        ex = _replica(db_target, engine_stream, offload)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.ledger.close()


def _idle(ex: RequestExecutor) -> bool:
    return ex.load.idle()


async def test_a_hold_taken_elsewhere_meanwhile_gives_the_budget_429(replicas):
    """Replica B reserves the whole hour between A's budget read and A's hold: A planned
    against a free budget, its hold is refused, the re-plan sees nothing left -> 429."""
    b = replicas()

    async def offload(fn: Any, *args: Any, **kwargs: Any) -> Any:
        result = await asyncio.to_thread(fn, *args, **kwargs)
        if fn is budget_gate.spend_and_holds:  # another replica takes the budget meanwhile
            await asyncio.to_thread(b.ledger.reserve, "default", "req-on-b", 1.0, {"hour": 1.0})
        return result

    a = replicas(offload)
    response = await _serve(a, "req-on-a")
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert json.loads(response.body)["error"]["code"] == "budget_exhausted"
    assert a.handle.requests == []  # never sent to an engine
    assert _idle(a) and a.load.tenant_in_flight("default") == 0
    assert a.ledger.count() == 0 and a.ledger.reservation("req-on-a") is None
    stored = await a.decision_for({}, "req-on-a")
    assert stored["action"] == "reject"  # the decision that answered is the one stored


async def test_granted_hold_is_settled_with_exactly_one_row(replicas):
    a = replicas()
    response = await _serve(a, "req-1")
    assert isinstance(response, JSONResponse) and response.status_code == 200
    assert a.ledger.count() == 1 and a.ledger.reservation("req-1") is None
    assert a.ledger.reserved_usd("default") == 0.0 and _idle(a)


async def test_decision_made_on_one_replica_is_read_on_the_other(replicas):
    a, b = replicas(), replicas()
    response = await _serve(a, "req-x")
    assert response.status_code == 200
    found = await b.decision_for({}, "req-x")  # written before A's answer was returned
    assert found["profile"] == response.headers["x-orchestrator-profile"]
    entry = b.decisions.store.entry("req-x")
    assert entry.inputs is not None and entry.inputs.model == FAMILY
    assert entry.inputs.prediction is not None and entry.inputs.prediction.p90_tokens == 16
    assert set(entry.inputs.profiles) == {p.name for p in LOCAL.profiles}


async def test_previous_response_id_works_across_replicas(replicas):
    a, b = replicas(), replicas()
    first = await _serve(a, "req-r1", {"model": FAMILY, "input": "Name a colour."}, "responses")
    response_id = json.loads(first.body)["id"]
    body = {"model": FAMILY, "input": "Another?", "previous_response_id": response_id}
    second = await _serve(b, "req-r2", body, "responses")
    assert second.status_code == 200
    sent = b.handle.requests[0].messages
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]


async def test_cancelled_while_holding_leaves_no_hold(replicas):
    """The client goes away while the hold is being written: the granted hold is released,
    the in-flight counts are back to zero."""
    gate = threading.Event()

    async def offload(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(fn, "__name__", "") == "reserve":

            def slow() -> Any:
                gate.wait(5)
                return fn(*args, **kwargs)

            return await asyncio.to_thread(slow)
        return await asyncio.to_thread(fn, *args, **kwargs)

    a = replicas(offload)
    task = asyncio.ensure_future(_serve(a, "req-gone"))
    for _ in range(200):  # until the request is counted in flight and waits for its hold
        await asyncio.sleep(0.01)
        if not a.load.idle():
            break
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        await asyncio.sleep(0.01)
        if a.ledger.reservation("req-gone") is None:
            break
    assert a.ledger.reservation("req-gone") is None
    assert a.handle.requests == [] and a.ledger.count() == 0
    await a.budget.settled()
    assert a.load.idle() and a.load.tenant_in_flight("default") == 0


async def test_the_row_is_committed_before_the_answer(replicas):
    """No ledger write is left queued behind an answer: a replica killed right after
    answering has already written that request's row (written in a worker thread)."""
    a = replicas()
    committed: list[str] = []
    settle = a.ledger.settle

    def slow_settle(record: Any) -> bool:
        threading.Event().wait(0.2)
        done = settle(record)
        committed.append(record.request_id)
        return done

    a.ledger.settle = slow_settle  # what the accountant calls
    response = await _serve(a, "req-row")
    assert response.status_code == 200 and committed == ["req-row"]


def test_stored_conversations_are_per_tenant_and_expire(db_target):
    from orchestrator.serving.errors import OrchestratorHTTPError
    from orchestrator.serving.responses_api import StoredResponse
    from orchestrator.storage import open_database

    clock = [1000.0]
    db = open_database(db_target)
    store = SharedResponseStore(db, max_age_s=60, prune_interval_s=0, clock=lambda: clock[0])
    other = SharedResponseStore(open_database(db_target), max_age_s=60, clock=lambda: clock[0])
    store.put("resp-1", StoredResponse("acme", ({"role": "user", "content": "hi"},)))
    assert other.history("resp-1", "acme") == [{"role": "user", "content": "hi"}]
    with pytest.raises(OrchestratorHTTPError, match="not stored"):
        other.history("resp-1", "globex")  # another tenant's id is not stored for it
    clock[0] += 61
    with pytest.raises(OrchestratorHTTPError, match="not stored"):
        other.history("resp-1", "acme")  # past max_age_s
    store.put("resp-2", StoredResponse("acme", ()))  # prunes the old row
    assert db.query("SELECT response_id FROM responses") == [("resp-2",)]
    other.db.close()
    db.close()
