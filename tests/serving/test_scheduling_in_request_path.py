"""The scheduler in the request path: vLLM's priority and the prediction on every engine
request, the ingress queue holding what the engines cannot batch (429 past a tenant's bound,
a client leaving while queued costs nothing)."""

from __future__ import annotations

import asyncio
import gc
import math

import pytest
from fastapi.responses import JSONResponse, StreamingResponse

from orchestrator.scheduling.replicas import request_work
from tests.predictions import prediction
from tests.serving.conftest import FAMILY, MESSAGES, POLICY_TEXT, error_of, make_executor
from tests.serving.conftest import serve_body as _serve


async def test_engine_requests_carry_the_priority_and_the_prediction(
    tmp_path, monkeypatch, chat_completion
):
    ex = make_executor(tmp_path, monkeypatch)
    ex.handle.streams.append(chat_completion())
    response = await _serve(ex, {"model": FAMILY, "messages": MESSAGES}, "chat")
    assert isinstance(response, JSONResponse) and response.status_code == 200
    sent = ex.handle.requests[0]
    assert sent.priority > 0
    prompt, predicted = request_work(sent)
    assert prompt == 11 and predicted >= 8  # the fake predictor's prompt and p50 (or more)
    ex.ledger.close()


async def test_fcfs_order_sends_priority_zero(tmp_path, monkeypatch, chat_completion):
    ex = make_executor(
        tmp_path, monkeypatch, policy_text=POLICY_TEXT + "scheduling: {order: fcfs}\n"
    )
    ex.handle.streams.append(chat_completion())
    await _serve(ex, {"model": FAMILY, "messages": MESSAGES}, "chat")
    assert ex.handle.requests[0].priority == 0
    ex.ledger.close()


async def _one_slot_held(tmp_path, monkeypatch, engine_stream, chunk, scheduling: str):
    """An executor with one profile, one batch slot and no engine seat beyond it, under
    `scheduling`, whose slot a hanging stream ("r1") holds; and the streamed body to send."""
    one_profile = f"  allowed_profiles: [smollm2-cpu]\nscheduling: {scheduling}\n"
    ex = make_executor(tmp_path, monkeypatch, policy_text=POLICY_TEXT + one_profile)
    ex.ingress_queue.capacity = lambda profile: 1  # one batch slot
    ex.ingress_queue.seats = lambda profile: 1  # and no engine seat beyond it (short lane)
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True}
    ex.handle.streams.append(engine_stream([chunk("a")], hang=True))
    first = await _serve(ex, body, "chat", {"x-request-id": "r1"})
    assert isinstance(first, StreamingResponse)  # holds the only slot while it streams
    return ex, body


async def test_a_full_profile_queues_refuses_past_the_bound_and_a_leaver_costs_nothing(
    tmp_path, monkeypatch, engine_stream, chunk
):
    ex, body = await _one_slot_held(tmp_path, monkeypatch, engine_stream, chunk, "{max_queued: 1}")
    queued = asyncio.create_task(_serve(ex, body, "chat", {"x-request-id": "r2"}))
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert not queued.done()
    assert sum(p["waiting"] for p in ex.ingress_queue.snapshot().values()) == 1
    refused = await _serve(ex, body, "chat", {"x-request-id": "r3"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert error_of(refused)["code"] == "queue_full"
    explained = await ex.decision_for({}, "r3")  # recorded and explained like any refusal
    assert "queue_full" in str(explained)
    queued.cancel()  # the client goes away while queued
    await asyncio.gather(queued, return_exceptions=True)
    assert sum(p["waiting"] for p in ex.ingress_queue.snapshot().values()) == 0
    assert len(ex.handle.requests) == 1  # neither the refused nor the leaver reached an engine
    assert ex.ledger.count() == 0  # and nothing was generated for them: no ledger row
    ex.ledger.close()


async def test_a_request_past_the_tenant_s_wait_bound_gets_429_queue_timeout(
    tmp_path, monkeypatch, engine_stream, chunk
):
    """`scheduling.max_wait_s`: a request still queued past it is handed back with 429
    `queue_timeout` and Retry-After, recorded, never sent to an engine, no ledger row."""
    ex, body = await _one_slot_held(
        tmp_path, monkeypatch, engine_stream, chunk, "{max_wait_s: 0.05}"
    )
    success = {"small": 0.5, "medium": 0.6, "large": 0.7, "frontier": 0.8}
    ex.predictor.predict_many = lambda body, profiles: {
        p.name: prediction(tier_success=success) for p in profiles
    }
    late = await _serve(ex, body, "chat", {"x-request-id": "r2"})
    assert late.status_code == 429 and int(late.headers["retry-after"]) >= 1
    assert error_of(late)["code"] == "queue_timeout"
    account = ex.quality.of("default")  # its tenant's quality account: answered nothing,
    assert account.served == pytest.approx(0.0) and account.strongest > 0
    assert account.shed > 0 and account.sums[0] == pytest.approx(account.shed)  # capacity
    assert "queue_timeout" in str(await ex.decision_for({}, "r2"))
    assert sum(p["waiting"] for p in ex.ingress_queue.snapshot().values()) == 0
    assert len(ex.handle.requests) == 1 and ex.ledger.count() == 0
    ex.ledger.close()


def test_orchestrator_status_shows_the_queues():
    from orchestrator.cli.status import render

    doc = {
        "profiles": {},
        "queues": {
            "smollm2-cpu": {
                "busy": 16,
                "waiting": 3,
                "tenants": {"acme": {"queued": 3, "priority": 5, "oldest_wait_s": 2.5}},
            }
        },
    }
    text = render(doc)
    assert (
        "queue smollm2-cpu: 16 in batch slots, 3 waiting: acme 3 (priority 5, oldest 2.5 s)" in text
    )


async def test_a_queued_request_s_decision_shows_its_position_and_wait(
    tmp_path, monkeypatch, engine_stream, chunk, chat_completion
):
    one_profile = "  allowed_profiles: [smollm2-cpu]\n"
    ex = make_executor(tmp_path, monkeypatch, policy_text=POLICY_TEXT + one_profile)
    ex.ingress_queue.capacity = lambda profile: 1  # one batch slot
    ex.ingress_queue.seats = lambda profile: 1  # and no engine seat beyond it (short lane)
    stream = {"model": FAMILY, "messages": MESSAGES, "stream": True}
    ex.handle.streams.append(engine_stream([chunk("a")]))
    first = await _serve(ex, stream, "chat", {"x-request-id": "r1"})
    assert isinstance(first, StreamingResponse)  # holds the only slot until it is read
    ex.handle.streams += [chat_completion(), chat_completion()]
    body = {"model": FAMILY, "messages": MESSAGES}
    waiting = [
        asyncio.create_task(_serve(ex, body, "chat", {"x-request-id": rid})) for rid in ("r2", "r3")
    ]
    for _ in range(500):  # both queued (the budget read runs in worker threads: a busy machine)
        if sum(p["waiting"] for p in ex.ingress_queue.snapshot().values()) == 2:
            break
        await asyncio.sleep(0.01)
    assert sum(p["waiting"] for p in ex.ingress_queue.snapshot().values()) == 2
    await asyncio.sleep(0.05)
    async for _ in first.body_iterator:  # the first answer ends: its slot goes to the queue
        pass
    answers = await asyncio.gather(*waiting)
    assert [a.status_code for a in answers] == [200, 200]
    straight = await ex.decision_for({}, "r1")
    assert straight["queue"] is None  # a slot was free: it did not wait
    second, third = [(await ex.decision_for({}, rid))["queue"] for rid in ("r2", "r3")]
    # one entered the queue first (which one is up to the worker threads of the budget read)
    # and the other found it ahead; both waited for the first answer
    assert sorted([second["position"], third["position"]]) == [0, 1]
    assert second["waited_ms"] >= 50 and third["waited_ms"] >= 50
    ex.ledger.close()


async def test_the_queue_holds_requests_before_admission_refuses_them(
    tmp_path, monkeypatch, engine_stream, chunk
):
    """On the embedded default (engine batch 16, full-speed batch 8) a profile's ninth request
    waits in the ingress queue, in its order, rather than in vLLM's: the ingress counts the
    batch slots as admission and the simulator do (`Profile.batch_slots`), so a queue forms
    before admission sheds at 1.5x (it never did while the ingress counted vLLM's 16). (The
    short lane is off here: these requests are predicted short, see the next test.)"""
    one_profile = "  allowed_profiles: [smollm2-cpu]\nscheduling: {short_work_tokens: 0}\n"
    ex = make_executor(tmp_path, monkeypatch, policy_text=POLICY_TEXT + one_profile)
    slots = ex.catalog.profile("smollm2-cpu").batch_slots
    assert slots == 8 < ex.catalog.profile("smollm2-cpu").max_num_seqs
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True}
    running = []
    for i in range(slots):
        ex.handle.streams.append(engine_stream([chunk("a")], hang=True))
        running.append(await _serve(ex, body, "chat", {"x-request-id": f"r{i}"}))
    assert all(isinstance(r, StreamingResponse) for r in running)
    queued = asyncio.create_task(_serve(ex, body, "chat", {"x-request-id": "r-queued"}))
    for _ in range(500):
        if sum(p["waiting"] for p in ex.ingress_queue.snapshot().values()) == 1:
            break
        await asyncio.sleep(0.01)
    assert sum(p["waiting"] for p in ex.ingress_queue.snapshot().values()) == 1
    assert len(ex.handle.requests) == slots  # the ninth has not reached the engine
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)
    ex.ledger.close()


async def test_admission_leaves_what_the_queue_holds_to_the_tenant_s_queue_bound(
    tmp_path, monkeypatch, engine_stream, chunk
):
    """Admission counts only what no queue bounds: with the 8 batch slots busy, 8 more requests
    wait in the ingress queue (admission alone would have shed the 13th at 1.5x the slots),
    and the next is refused by the tenant's queue bound (`max_queued: 8`), 429 `queue_full`
    with Retry-After, not `server_overloaded`."""
    one_profile = (
        "  allowed_profiles: [smollm2-cpu]\nscheduling: {short_work_tokens: 0, "
        "fair_headroom: 0, max_queued: 8}\n"
    )
    ex = make_executor(tmp_path, monkeypatch, policy_text=POLICY_TEXT + one_profile)
    slots = ex.catalog.profile("smollm2-cpu").batch_slots
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True}
    for i in range(slots):
        ex.handle.streams.append(engine_stream([chunk("a")], hang=True))
        assert isinstance(
            await _serve(ex, body, "chat", {"x-request-id": f"r{i}"}), StreamingResponse
        )
    waiting = []
    for i in range(8):  # one at a time: each is in the queue before the next arrives
        waiting.append(asyncio.create_task(_serve(ex, body, "chat", {"x-request-id": f"w{i}"})))
        await _until_waiting(ex, i + 1, tries=500)  # the budget read: worker threads
    assert ex.ingress_queue.bounded() == {"smollm2-cpu": 8}
    refused = await _serve(ex, body, "chat", {"x-request-id": "over"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert error_of(refused)["code"] == "queue_full"
    assert len(ex.handle.requests) == slots  # the waiters have not reached the engine
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    ex.ledger.close()


async def test_a_request_predicted_short_starts_in_a_free_engine_seat_past_a_full_batch(
    tmp_path, monkeypatch, engine_stream, chunk
):
    """The short lane on the request path: every batch slot (8) holds a hanging stream; the
    ninth request, predicted to need a few tokens, reaches the engine at once in one of its
    16 seats instead of waiting for a slot, and its decision shows no queue wait."""
    one_profile = "  allowed_profiles: [smollm2-cpu]\n"
    ex = make_executor(tmp_path, monkeypatch, policy_text=POLICY_TEXT + one_profile)
    slots = ex.catalog.profile("smollm2-cpu").batch_slots
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True, "max_tokens": 16}
    for i in range(slots + 1):
        ex.handle.streams.append(engine_stream([chunk("a")], hang=True))
        got = await _serve(ex, body, "chat", {"x-request-id": f"r{i}"})
        assert isinstance(got, StreamingResponse)
    assert sum(p["waiting"] for p in ex.ingress_queue.snapshot().values()) == 0
    assert len(ex.handle.requests) == slots + 1  # the ninth is on the engine
    assert ex.ingress_queue.snapshot()["smollm2-cpu"]["busy"] == slots + 1
    ex.ledger.close()


async def _client_leaves(response: StreamingResponse) -> None:
    """A client reading a stream goes away mid-stream (its request ends, its slot frees)."""

    async def read() -> None:
        async for _ in response.body_iterator:
            pass

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.05)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)


async def _until_waiting(ex, n: int, tries: int = 100) -> dict:
    for _ in range(tries):
        snapshot = ex.ingress_queue.snapshot()
        if sum(p["waiting"] for p in snapshot.values()) == n:
            return snapshot
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {n} waiting: {ex.ingress_queue.snapshot()}")


async def test_a_waiter_whose_engine_died_with_nowhere_else_to_go_is_handed_back(
    tmp_path, monkeypatch, engine_stream, chunk
):
    """The engine a request waits for fails (another request saw it): the waiter leaves the
    queue at once with 429 `profile_lost` and a Retry-After of the profile's start-up; it never
    reached an engine, so no ledger row."""
    one_profile = "  allowed_profiles: [smollm2-cpu]\n"
    ex = make_executor(tmp_path, monkeypatch, policy_text=POLICY_TEXT + one_profile)
    ex.ingress_queue.capacity = lambda profile: 1
    ex.ingress_queue.seats = lambda profile: 1
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True}
    ex.handle.streams.append(engine_stream([chunk("a")], hang=True))
    assert isinstance(await _serve(ex, body, "chat", {"x-request-id": "r1"}), StreamingResponse)
    queued = asyncio.create_task(_serve(ex, body, "chat", {"x-request-id": "r2"}))
    await _until_waiting(ex, 1)
    ex.engine_down("smollm2-cpu", "engine process killed")
    refused = await asyncio.wait_for(queued, 5)
    assert refused.status_code == 429 and error_of(refused)["code"] == "profile_lost"
    startup = ex.catalog.profile("smollm2-cpu").replicas.startup_s
    assert int(refused.headers["retry-after"]) == max(1, math.ceil(startup))
    assert sum(p["waiting"] for p in ex.ingress_queue.snapshot().values()) == 0
    assert len(ex.handle.requests) == 1 and ex.ledger.count() == 0
    assert "profile_lost" in str(await ex.decision_for({}, "r2"))
    ex.ledger.close()


async def test_a_waiter_whose_engine_died_is_planned_again_and_served_elsewhere(
    tmp_path, monkeypatch, engine_stream, chunk, chat_completion
):
    """Both profiles hold one hanging stream each and a third request waits for one of them;
    that profile's engine fails: the waiter moves to the other profile's queue (planned
    again), is served there once its slot frees, and is one ledger row."""
    ex = make_executor(tmp_path, monkeypatch)
    ex.ingress_queue.capacity = lambda profile: 1
    ex.ingress_queue.seats = lambda profile: 1
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True}
    holders = {}
    for rid in ("h1", "h2"):
        ex.handle.streams.append(engine_stream([chunk("a")], hang=True))
        got = await _serve(ex, body, "chat", {"x-request-id": rid})
        holders[got.headers["x-orchestrator-profile"]] = got
    assert len(holders) == 2  # one on each profile
    queued = asyncio.create_task(
        _serve(ex, {**body, "stream": False}, "chat", {"x-request-id": "w"})
    )
    lost = next(name for name, q in (await _until_waiting(ex, 1)).items() if q["waiting"])
    other = next(name for name in holders if name != lost)
    ex.engine_down(lost, "engine process killed")
    snapshot = await _until_waiting(ex, 1)
    assert snapshot[other]["waiting"] == 1 and snapshot[lost]["waiting"] == 0
    ex.handle.streams.append(chat_completion())
    await _client_leaves(holders[other])  # the other profile's slot frees
    served = await asyncio.wait_for(queued, 5)
    assert served.status_code == 200
    assert served.headers["x-orchestrator-profile"] == other
    assert served.headers["x-orchestrator-retried-from"] == lost
    assert ex.handle.requests[-1].model == other
    rows = [r for r in ex.ledger.records() if r.request_id == "w"]
    assert len(rows) == 1 and rows[0].profile == other
    await _client_leaves(holders[lost])
    ex.ledger.close()


async def test_a_refused_run_leaves_no_cyclic_garbage(tmp_path, monkeypatch, engine_stream, chunk):
    """A run handed back by the queue never settles; its settlement drops the run's hooks all
    the same, so the run is freed by reference counting (as a served one is)."""
    ex, body = await _one_slot_held(
        tmp_path, monkeypatch, engine_stream, chunk, "{max_wait_s: 0.05}"
    )
    assert (await _serve(ex, body, "chat", {"x-request-id": "r2"})).status_code == 429
    gc.collect()  # what the first refusal created once is not counted
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        late = await _serve(ex, body, "chat", {"x-request-id": "r3"})
        assert late.status_code == 429 and error_of(late)["code"] == "queue_timeout"
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not kinds & {"RequestRun", "RequestSettlement", "EnginePlan"}, kinds
    ex.ledger.close()
