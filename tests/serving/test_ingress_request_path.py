"""The request path without Ray: a `RequestExecutor` built with a fake predictor and a fake
profile engine, the real policy, router, ledger and metrics.

Checks the order of the stages (an invalid body is refused before anything is predicted,
priced, decided or recorded), what a cut-short stream is charged, and that the ingress never
sets `X-Request-Id` itself (Serve's proxy does; a second one would be sent twice)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.planning.expected import expected_of
from orchestrator.serving import openai_io
from orchestrator.serving.errors import OrchestratorHTTPError
from orchestrator.serving.executor import RequestExecutor
from orchestrator.serving.plan import INLINE_PREDICT_CHARS
from orchestrator.signals.meters import demand_key
from orchestrator.telemetry.metrics import INSTANCE_LABEL, OrchestratorMetrics
from tests.serving.conftest import (
    FAMILY,
    LOCAL,
    MESSAGES,
    POLICY_TEXT,
    use_policy,
)
from tests.serving.conftest import serve_body as _serve


def _nothing_happened(ing: RequestExecutor) -> None:
    assert ing.predictor.calls == [], "the predictor ran for an invalid body"
    assert ing.decide_calls == [], "decide ran for an invalid body"
    assert len(ing.decisions.store) == 0, "a decision was stored for an invalid body"
    assert ing.ledger.count() == 0, "a ledger row was written for an invalid body"
    assert ing.load.idle()
    assert ing.handle.requests == [], "an engine was called for an invalid body"


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        ("chat", {"model": FAMILY, "messages": MESSAGES, "temperature": "hot"}, "temperature"),
        ("chat", {"model": FAMILY, "messages": MESSAGES, "max_tokens": "x"}, "max_tokens"),
        ("chat", {"model": FAMILY, "messages": 5}, "messages"),
        ("chat", {"model": FAMILY, "messages": MESSAGES, "top_p": [1]}, "top_p"),
        ("chat", {"model": FAMILY, "messages": MESSAGES, "stop": 7}, "stop"),
        ("chat", {"model": FAMILY, "messages": MESSAGES, "stream": "often"}, "stream"),
        ("chat", {"model": FAMILY, "messages": [{"role": "user", "content": 3}]}, "messages"),
        ("completions", {"model": FAMILY, "prompt": "hi", "temperature": "hot"}, "temperature"),
        ("completions", {"model": FAMILY, "prompt": "hi", "n": "two"}, "n"),
    ],
)
async def test_invalid_body_is_refused_before_anything_is_priced(ingress, endpoint, body, param):
    with pytest.raises(OrchestratorHTTPError) as err:
        await _serve(ingress, body, endpoint)
    assert err.value.status == 400
    assert err.value.param is not None and err.value.param.startswith(param), err.value.param
    assert param in err.value.message
    _nothing_happened(ingress)


async def test_stream_options_without_stream_is_refused_before_pricing(ingress):
    body = {"model": FAMILY, "messages": MESSAGES, "stream_options": {"include_usage": True}}
    with pytest.raises(OrchestratorHTTPError) as err:
        await _serve(ingress, body, "chat")
    assert err.value.status == 400 and err.value.param == "stream_options"
    _nothing_happened(ingress)


@pytest.mark.parametrize("raw", [b"{not json", b"[1]", b""])
async def test_unparseable_body_is_refused_before_anything(ingress, raw):
    with pytest.raises(OrchestratorHTTPError) as err:
        await _serve(ingress, raw, "chat")
    assert err.value.status == 400
    _nothing_happened(ingress)


async def test_valid_body_is_predicted_decided_and_served(ingress, chat_completion):
    """The positive control for the tests above: the same ingress does price a valid body."""
    ingress.handle.streams.append(chat_completion())
    response = await _serve(
        ingress, {"model": FAMILY, "messages": MESSAGES, "temperature": 0.5}, "chat"
    )
    assert isinstance(response, JSONResponse) and response.status_code == 200
    assert len(ingress.predictor.calls) == 1 and len(ingress.decide_calls) == 1
    assert len(ingress.decisions.store) == 1
    assert ingress.ledger.count() == 1
    engine_request = ingress.handle.requests[0]
    assert engine_request.temperature == 0.5 and engine_request.max_tokens is not None
    assert "x-request-id" not in response.headers
    assert response.headers["x-orchestrator-profile"] in {p.name for p in LOCAL.profiles}


@pytest.mark.parametrize("chars, on_loop", [(INLINE_PREDICT_CHARS, True),
                                             (INLINE_PREDICT_CHARS + 1, False)])  # fmt: skip
async def test_only_a_long_text_is_predicted_in_a_worker_thread(ingress, chat_completion, chars,
                                                               on_loop):  # fmt: skip
    """The event loop is never held by a long featurization; a short text skips the hop."""
    threads: list[int] = []
    real = ingress.predictor.predict_many

    def predict_many(body: Any, profiles: list[Any]) -> Any:
        threads.append(threading.get_ident())
        return real(body, profiles)

    ingress.predictor.predict_many = predict_many
    ingress.handle.streams.append(chat_completion())
    body = {"model": FAMILY, "messages": [{"role": "user", "content": "x" * chars}]}
    response = await _serve(ingress, body, "chat")
    assert response.status_code == 200
    assert (threads == [threading.get_ident()]) is on_loop and len(threads) == 1


async def test_rejection_and_error_responses_carry_no_request_id_of_ours(ingress):
    """Serve's proxy appends X-Request-Id to every response; one set by the app would make two.
    A budget rejection (decision made, no engine) and a 4xx error are built by the ingress."""
    for p in LOCAL.profiles:
        ingress.failed[p.name] = True  # nothing healthy: the router refuses with 503
    response = await _serve(ingress, {"model": FAMILY, "messages": MESSAGES}, "chat")
    assert response.status_code == 503
    assert "x-request-id" not in response.headers
    assert response.headers["retry-after"]

    with pytest.raises(OrchestratorHTTPError) as err:
        await _serve(ingress, {"model": FAMILY, "messages": 5}, "chat")
    assert not any(k.lower() == "x-request-id" for k in err.value.headers)


def _scrape(metrics: OrchestratorMetrics) -> dict[tuple[str, frozenset], float]:
    body, _ = metrics.render_prometheus()
    return {
        (s.name, frozenset((k, v) for k, v in s.labels.items() if k != INSTANCE_LABEL)): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


async def test_disconnected_stream_is_charged_in_ledger_and_metrics(ingress, chunk, engine_stream):
    packets = [chunk(role="assistant", content="", completion_tokens=0, prompt_tokens=11)]
    packets += [chunk(content=f"t{i}", completion_tokens=i + 1, prompt_tokens=11) for i in range(9)]
    stream = engine_stream(packets, hang=True)
    ingress.handle.streams.append(stream)
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True, "max_tokens": 100}
    response = await _serve(ingress, body, "chat", {"x-request-id": "rid-cut-short"})
    assert isinstance(response, StreamingResponse)
    assert "x-request-id" not in response.headers
    engine_request = ingress.handle.requests[0]
    assert engine_request.stream_options.include_usage
    # both profiles serve the family: the stream may migrate, so it is counted by token ids
    assert engine_request.return_token_ids
    assert not engine_request.stream_options.continuous_usage_stats

    relay = response.body_iterator
    events = [await relay.__anext__() for _ in range(7)]  # role + 6 tokens
    assert all("usage" not in openai_io.sse_json(e) for e in events)  # the client did not ask
    await relay.aclose()  # the client went away

    row = ingress.ledger.get("rid-cut-short")
    prices = ingress.policy_source.current.prices[row.profile]
    assert row.status == "cancelled"
    assert (row.prompt_tokens, row.output_tokens) == (11, 6)
    assert row.cost_usd == pytest.approx(prices.cost_usd(11, 6)) and row.cost_usd > 0
    assert stream.cancelled
    assert ingress.load.idle()
    await ingress.accountant.learned()
    assert ingress.predictor.observed == []  # a truncated answer teaches calibration nothing

    samples = _scrape(ingress.metrics)
    labels = {"tenant": "default", "profile": row.profile}
    cost = samples[("orchestrator_cost_usd_total", frozenset(labels.items()))]
    assert cost == pytest.approx(row.cost_usd)
    output = samples[("orchestrator_tokens_total", frozenset({**labels, "kind": "output"}.items()))]
    assert output == 6
    cancelled = {**labels, "endpoint": "chat", "status_code": "499"}
    assert samples[("orchestrator_requests_total", frozenset(cancelled.items()))] == 1


async def _three_token_stream(ingress, chunk, engine_stream, final_usage, request_id: str):
    """Stream a three-token answer (11 prompt tokens) through `ingress` and read it to the end."""
    packets = [chunk(role="assistant", content="", completion_tokens=0, prompt_tokens=11)]
    packets += [chunk(content=f"t{i}", completion_tokens=i + 1, prompt_tokens=11) for i in range(3)]
    ingress.handle.streams.append(engine_stream([*packets, final_usage(11, 3)]))
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True, "max_tokens": 100}
    response = await _serve(ingress, body, "chat", {"x-request-id": request_id})
    _ = [event async for event in response.body_iterator]


async def test_a_stream_that_cannot_migrate_is_counted_by_per_chunk_usage(
    ingress, chunk, engine_stream, final_usage
):
    """No other profile of the model for the tenant: no token ids asked (nothing to carry
    the stream to), per-chunk usage instead, and the stream is still charged exactly."""
    one = POLICY_TEXT.replace(
        "  name: default\n", "  name: default\n  allowed_profiles: [smollm2-cpu]\n"
    )
    use_policy(ingress, one)
    await _three_token_stream(ingress, chunk, engine_stream, final_usage, "rid-one-profile")
    engine_request = ingress.handle.requests[0]
    assert not engine_request.return_token_ids
    assert engine_request.stream_options.continuous_usage_stats
    row = ingress.ledger.get("rid-one-profile")
    assert (row.profile, row.status, row.output_tokens) == ("smollm2-cpu", "ok", 3)


async def test_a_stream_longer_than_the_hold_ttl_keeps_its_hold(ingress, chunk, engine_stream):
    """The ingress renews the budget hold of a request still running (every 30 s, well within
    the TTL); settled, there is nothing left to renew."""
    now = [datetime.now(UTC)]
    ingress.budget.clock = lambda: now[0]
    ingress.budget.ttl_s = 60.0
    packets = [chunk(role="assistant", content="", completion_tokens=0, prompt_tokens=11)]
    packets += [chunk(content=f"t{i}", completion_tokens=i + 1, prompt_tokens=11) for i in range(4)]
    ingress.handle.streams.append(engine_stream(packets, hang=True))
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True, "max_tokens": 100}
    response = await _serve(ingress, body, "chat", {"x-request-id": "rid-long"})
    relay = response.body_iterator
    _ = [await relay.__anext__() for _ in range(3)]
    _, amount, first_expiry = ingress.ledger.reservation("rid-long")
    assert amount > 0 and first_expiry == now[0] + timedelta(seconds=60)
    for _ in range(8):  # 4 minutes of stream (4x the TTL), renewed every 30 s
        now[0] += timedelta(seconds=30)
        assert await ingress.budget.renew() == 1
        assert await ingress.budget.expire() == 0
        assert ingress.ledger.reserved_usd("default", now=now[0]) == pytest.approx(amount)
    assert ingress.ledger.reservation("rid-long")[2] == now[0] + timedelta(seconds=60)
    await relay.aclose()
    assert ingress.ledger.reservation("rid-long") is None  # settled: the row released it
    assert ingress.ledger.get("rid-long").status == "cancelled"
    assert await ingress.budget.renew() == 0


async def test_budget_is_read_with_two_selects(ingress, monkeypatch):
    """Spend per limited window (one query) and every replica's holds (one query)."""
    statements: list[str] = []
    run = ingress.ledger.db.query

    def spy(sql, params=()):
        statements.append(sql)
        return run(sql, params)

    monkeypatch.setattr(ingress.ledger.db, "query", spy)
    tenant = ingress.policy_source.current.resolve_tenant(None)
    state = await ingress.budget.budget_state(tenant)
    assert len(statements) == 2 and all(s.lstrip().startswith("SELECT") for s in statements)
    assert "reservations" in statements[1]
    assert state.remaining_usd == pytest.approx(1.0)  # the tightest window: the hour's $1


async def test_responses_request_is_served_through_the_chat_path(ingress, chat_completion):
    ingress.handle.streams.append(chat_completion())
    body = {"model": FAMILY, "input": "Name a colour.", "instructions": "Be brief."}
    response = await _serve(ingress, body, "responses")
    assert isinstance(response, JSONResponse) and response.status_code == 200
    data = json.loads(response.body)
    assert data["object"] == "response" and data["output"][0]["content"][0]["text"] == "Blue."
    assert data["usage"]["output_tokens"] == 3 and data["usage"]["cost_usd"] > 0
    assert data["model"] == FAMILY
    engine_request = ingress.handle.requests[0]  # vLLM's chat request, built from the input
    assert [m["role"] for m in engine_request.messages] == ["system", "user"]
    assert ingress.ledger.count() == 1 and len(ingress.decide_calls) == 1
    assert response.headers["x-orchestrator-profile"] in {p.name for p in LOCAL.profiles}


async def test_invalid_responses_body_is_refused_before_anything_is_priced(ingress):
    body = {"model": FAMILY, "input": "hi", "background": True}
    with pytest.raises(OrchestratorHTTPError) as err:
        await _serve(ingress, body, "responses")
    assert err.value.status == 400 and err.value.param == "background"
    _nothing_happened(ingress)


async def test_tools_pinned_to_a_profile_without_parser_is_a_400_before_the_engine(ingress):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {"model": "smollm2-cpu-ngram", "messages": MESSAGES, "tools": [tool]}
    response = await _serve(ingress, body, "chat")
    assert response.status_code == 400
    error = json.loads(response.body)["error"]
    assert error["code"] == "tool_calling_unsupported" and "tool_call_parser" in error["message"]
    assert ingress.handle.requests == []


async def test_the_body_is_validated_once_and_the_decision_copied_in(
    ingress, chat_completion, monkeypatch
):
    """vLLM's request model is built once per request (parse); the decision is applied with
    `model_copy`, never by validating the body a second time."""
    calls: list[str] = []
    real = openai_io.validate_request

    def counting(body: Any, endpoint: Any) -> Any:
        calls.append(endpoint)
        return real(body, endpoint)

    monkeypatch.setattr(openai_io, "validate_request", counting)
    ingress.handle.streams.append(chat_completion())
    body = {"model": FAMILY, "messages": MESSAGES, "max_completion_tokens": 900}
    response = await _serve(ingress, body, "chat", {"x-request-id": "rid-once"})
    assert response.status_code == 200
    assert calls == ["chat"]
    sent = ingress.handle.requests[0]
    assert sent.model == response.headers["x-orchestrator-profile"]
    assert sent.request_id == "rid-once"
    assert sent.max_tokens == sent.max_completion_tokens == 512  # the policy's max_tokens


async def _gated_burst(ingress: Any, chat_completion: Any, burst: int = 12) -> list[str]:
    """Send `burst` requests at once; none finishes before all are dispatched. The profile
    each was sent to, in dispatch order."""
    import asyncio

    gate = asyncio.Event()
    chosen: list[str] = []

    class GatedHandle:
        def __init__(self, name: str):
            self.name = name
            self.chat = SimpleNamespace(remote=self._remote)

        def _remote(self, request: Any, raw_request_info: Any) -> Any:
            chosen.append(self.name)
            inner = chat_completion()

            class Gated:
                def __aiter__(self) -> Any:
                    return self

                async def __anext__(self) -> Any:
                    await gate.wait()  # every request is dispatched before any finishes
                    return await inner.__anext__()

                def cancel(self) -> None:
                    inner.cancel()

            return Gated()

    handles = {p.name: GatedHandle(p.name) for p in LOCAL.profiles}
    ingress.handles = handles.__getitem__
    body = {"model": FAMILY, "messages": MESSAGES, "max_tokens": 48}
    tasks = [
        asyncio.create_task(_serve(ingress, body, "chat", {"x-request-id": f"burst-{i}"}))
        for i in range(burst)
    ]
    for _ in range(500):
        if len(chosen) == burst or any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    gate.set()
    responses = await asyncio.gather(*tasks)
    assert [r.status_code for r in responses] == [200] * burst
    return chosen


async def test_a_burst_planned_at_once_sees_each_others_load(ingress, chat_completion):
    """Predictions run in worker threads, yet requests arriving at the same moment are decided
    against each other's load (each is counted in flight before the next is decided): a burst
    spreads over both profiles, as the live-load model says it should."""
    chosen = await _gated_burst(ingress, chat_completion)
    assert set(chosen) == {p.name for p in LOCAL.profiles}, chosen


async def test_a_ttft_seen_under_past_load_does_not_hide_todays_load(ingress, chat_completion):
    """A profile that answered slowly while it was busy (3 s, as the model expected at that
    load) is not taken for slow when idle: the observed TTFT enters as a ratio to the model's
    figure, so a later burst still spreads; a slower-than-modelled one moves the ratio."""
    import time

    first, second = (p.name for p in LOCAL.profiles[:2])
    ingress.scales.observe(
        first, (3.0, None), (3000.0, None), time.monotonic()
    )  # as modelled: scale 1
    assert ingress.scales.ttft.fresh(first, time.monotonic()) == pytest.approx(1.0)
    chosen = await _gated_burst(ingress, chat_completion)
    assert set(chosen) == {first, second}, chosen

    ingress.scales.ttft.clear()  # (the burst's own answers were observed too)
    ingress.scales.observe(first, (1.0, None), (1000.0, None), time.monotonic())
    ingress.scales.observe(
        first, (3.0, None), (1000.0, None), time.monotonic()
    )  # 3x slower: the EMA moves
    assert ingress.scales.ttft.fresh(first, time.monotonic()) == pytest.approx(1.0 + 0.2 * 2.0)
    views = {v.name: v for v in ingress.views_now(ingress.policy_source.current)}
    assert views[first].live.ttft_scale == pytest.approx(1.4)
    assert views[second].live.ttft_scale is None  # never observed: the model alone
    assert views[first].live.tpot_scale is None  # a TTFT says nothing of the TPOT


async def test_a_whole_answer_says_nothing_of_the_ttft(ingress, chat_completion):
    """A non-streamed answer arrives at once: its wait is the whole generation, not a time to
    first token, so it leaves the TTFT (and TPOT) scale alone; a stream's first token sets it."""
    import time

    ingress.handle.streams.append(chat_completion())
    body = {"model": "smollm2-cpu", "messages": MESSAGES, "max_tokens": 100}
    response = await _serve(ingress, body, "chat")
    assert response.status_code == 200
    assert ingress.scales.ttft.fresh("smollm2-cpu", time.monotonic()) is None
    assert ingress.scales.tpot.fresh("smollm2-cpu", time.monotonic()) is None


class _Clock(datetime):
    """The request's clock (its start, first token and end): stopped at `start` and moved
    on only by the test (`offset`), so the TPOT a stream shows is exactly the gap the test
    streams its tokens at, however slowly the machine runs the test."""

    start = datetime.now(UTC)
    offset = timedelta(0)

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return (cls.start + cls.offset).astimezone(tz)


async def _stream_with_token_gap(ingress, engine_stream, chunk, final_usage, gap_s, rid):
    """One stream pinned to `smollm2-cpu`, 10 tokens `gap_s` apart (on the accounting's
    clock), served to the end; returns the decision it ran under."""

    class Ticking(engine_stream):
        async def __anext__(self) -> Any:
            if self.packets and self.packets[0] in gaps:
                _Clock.offset += timedelta(seconds=gap_s)
            return await super().__anext__()

    tokens = [chunk(content=f"t{i}", completion_tokens=i + 1, prompt_tokens=11) for i in range(10)]
    gaps = set(tokens[1:])  # the first token comes with the role chunk; 9 gaps after it
    role = chunk(role="assistant", content="", completion_tokens=0, prompt_tokens=11)
    ingress.handle.streams.append(Ticking([role, *tokens, final_usage(11, 10)]))
    body = {"model": "smollm2-cpu", "messages": MESSAGES, "stream": True, "max_tokens": 100}
    response = await _serve(ingress, body, "chat", {"x-request-id": rid})
    assert isinstance(response, StreamingResponse)
    _ = [event async for event in response.body_iterator]
    assert ingress.ledger.get(rid).status == "ok"
    return ingress.decisions.store.get(rid)[1]


async def test_a_slow_stream_raises_its_profiles_tpot_scale_for_a_while(
    ingress, engine_stream, chunk, final_usage, chat_completion, monkeypatch
):
    """Tokens streamed 3x slower than the decision's modelled TPOT set the profile's TPOT
    scale to 3 (first observation); the next decision on that profile expects 3x the TPOT;
    after the scale's max age the model alone is back."""
    from orchestrator.serving import accounting, request_telemetry

    monkeypatch.setattr(accounting, "datetime", _Clock)
    monkeypatch.setattr(request_telemetry, "datetime", _Clock)  # the request's start
    name = "smollm2-cpu"
    first = await _stream_with_token_gap(ingress, engine_stream, chunk, final_usage, 0.0, "r0")
    modelled = first.estimate.tpot_ms
    assert ingress.scales.tpot.fresh(name, time.monotonic()) == pytest.approx(0.2)  # clipped
    ingress.scales.tpot.clear()

    await _stream_with_token_gap(
        ingress, engine_stream, chunk, final_usage, 3 * modelled / 1000, "r1"
    )
    assert ingress.scales.tpot.fresh(name, time.monotonic()) == pytest.approx(3.0, rel=1e-4)
    views = {v.name: v for v in ingress.views_now(ingress.policy_source.current)}
    assert views[name].live.tpot_scale == pytest.approx(3.0, rel=1e-4)
    assert views["smollm2-cpu-ngram"].live.tpot_scale is None
    # what /v1/orchestrator/status shows per profile
    assert ingress.latency_scales(name)["tpot"] == pytest.approx(3.0, rel=1e-4)
    assert ingress.latency_scales("smollm2-cpu-ngram") == {"ttft": None, "tpot": None}

    ingress.handle.streams.append(chat_completion())  # (a whole answer: no TPOT observed)
    body = {"model": name, "messages": MESSAGES, "max_tokens": 100}
    assert (await _serve(ingress, body, "chat", {"x-request-id": "r2"})).status_code == 200
    next_tpot = ingress.decisions.store.get("r2")[1].estimate.tpot_ms
    assert next_tpot == pytest.approx(3 * modelled, rel=0.05)

    scale, at = ingress.scales.tpot.by_profile[name]
    ingress.scales.tpot.by_profile[name] = (scale, at - ingress.scales.tpot.max_age_s - 1)
    views = {v.name: v for v in ingress.views_now(ingress.policy_source.current)}
    assert views[name].live.tpot_scale is None  # forgotten: the model alone again
    assert ingress.latency_scales(name)["tpot"] is None


async def test_a_tpot_seen_under_heavy_load_is_no_floor_on_a_light_one(ingress, chat_completion):
    """A TPOT observed while the profile was busy, as the model expected at that load, leaves
    the scale at 1: the next decision at a light load expects the light load's faster TPOT
    (a floor would have kept the heavy figure)."""
    from orchestrator import replica_model as rm

    name = "smollm2-cpu"
    view = next(v for v in ingress.views_now(ingress.policy_source.current) if v.name == name)
    heavy = rm.timing(view.performance, rm.LiveState(requests_in_flight=7), 0).tpot_ms
    ingress.scales.observe(name, (None, heavy / 1000), (None, heavy), time.monotonic())
    ingress.handle.streams.append(chat_completion())
    body = {"model": name, "messages": MESSAGES, "max_tokens": 100}
    assert (await _serve(ingress, body, "chat", {"x-request-id": "light"})).status_code == 200
    light = ingress.decisions.store.get("light")[1].estimate.tpot_ms
    assert light == pytest.approx(rm.timing(view.performance, view.live, 0).tpot_ms)
    assert light < heavy  # a floor would have kept the heavy figure


def test_a_migrated_stream_is_counted_where_it_runs(ingress):
    """A stream that continues on another profile moves its in-flight count there, and its
    end releases that profile's count, not the failed one's (the failed profile would
    otherwise look busy, or go negative, after every migration)."""
    failed, survivor = (p.name for p in LOCAL.profiles[:2])
    load = ingress.load
    load.begin("r", "default", failed, 0.5)
    assert (load.in_flight(failed), load.in_flight(survivor)) == (1, 0)
    assert load.reserved_usd("default") == pytest.approx(0.5) and load.running() == ["r"]
    load.move("r", survivor)
    assert (load.in_flight(failed), load.in_flight(survivor)) == (0, 1)
    load.end("r")
    assert (load.in_flight(failed), load.in_flight(survivor)) == (0, 0)
    assert load.tenant_in_flight("default") == 0
    assert load.reserved_usd("default") == pytest.approx(0.0) and load.idle()


async def test_the_predict_and_route_spans_cover_the_time_those_stages_took(
    ingress, chat_completion, monkeypatch
):
    """A trace shows where a request's time went before the engine: a predictor that takes
    60 ms gives a `predict` span of at least 60 ms, and `route` follows it, ending before the
    engine span starts (both were zero-length spans recorded after the fact)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from orchestrator.telemetry import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "get_tracer", lambda *_: provider.get_tracer("test"))
    slow = ingress.predictor.predict_many

    def predict_slowly(body: Any, profiles: list[Any]) -> dict[str, Any]:
        time.sleep(0.06)
        return slow(body, profiles)

    monkeypatch.setattr(ingress.predictor, "predict_many", predict_slowly)
    ingress.handle.streams.append(chat_completion())
    body = {"model": FAMILY, "messages": MESSAGES, "max_tokens": 20}
    response = await _serve(ingress, body, "chat")
    assert response.status_code == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    predicted, routed, engine = (spans[n] for n in ("predict", "route", "engine"))
    assert predicted.end_time - predicted.start_time >= 60_000_000
    assert predicted.end_time <= routed.start_time <= routed.end_time <= engine.start_time
    request = spans["POST /v1/chat/completions"]
    assert all(s.parent.span_id == request.context.span_id for s in (predicted, routed, engine))
    assert routed.attributes[tracing.ATTR_PROFILE] in {p.name for p in LOCAL.profiles}


async def test_a_settled_stream_is_judged_against_its_targets_for_the_planner(
    ingress, chunk, engine_stream, final_usage
):
    """The planner reads, per profile, the share of requests within their own tenant's
    targets (p95s are shares): a streamed answer under a generous TTFT target counts within."""
    use_policy(ingress, POLICY_TEXT + "  latency: {ttft_p95_ms: 600000, tpot_p95_ms: 600000}\n")
    await _three_token_stream(ingress, chunk, engine_stream, final_usage, "rid-judged")
    profile = ingress.ledger.get("rid-judged").profile
    out = ingress.demand.export(time.monotonic())
    assert out[demand_key(profile, "slo_judged")] == 1
    assert out[demand_key(profile, "slo_within")] == 1


@pytest.mark.parametrize("sizing", ["p50", "expected"])
async def test_an_admitted_request_is_demand_at_the_policy_s_sizing(
    ingress, chat_completion, sizing
):
    """The planner sizes from what the policy's `autoscaling.demand_sizing` says: the
    decision's median answer (p50), or what the request is expected to generate (the lognormal
    of its decision's p50 and p90 under its max_tokens, `planning.expected`)."""
    use_policy(ingress, POLICY_TEXT + f"autoscaling: {{demand_sizing: {sizing}}}\n")
    ingress.handle.streams.append(chat_completion())
    body = {"model": FAMILY, "messages": MESSAGES, "max_tokens": 300}
    response = await _serve(ingress, body, "chat", {"x-request-id": "rid-demand"})
    assert response.status_code == 200
    est = ingress.decisions.store.get("rid-demand")[1].estimate
    assert est.output_tokens_p90 > est.output_tokens  # a spread to expect from
    out_tps = ingress.demand.rates(time.monotonic())[response.headers["x-orchestrator-profile"]][2]
    want = expected_of(est) if sizing == "expected" else est.output_tokens
    assert out_tps * ingress.demand.window_s == pytest.approx(want)
    assert expected_of(est) > est.output_tokens
