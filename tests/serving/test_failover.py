"""Engine failure in the relay (issue 15): a stream cut mid-way is carried to another engine
token-exactly, or ends with one error event; one ledger row charges every leg."""

from __future__ import annotations

import json

import pytest

from orchestrator.request.spec import read_spec
from orchestrator.serving import failover as fo
from orchestrator.serving import openai_io
from orchestrator.serving.accounting import EngineUsage
from orchestrator.serving.relay import Continuation, StreamFailover
from tests.serving.test_stream_relay import LOCAL, POLICY, PRICES, Harness

PROMPT_IDS = [1, 2, 3, 4, 5]
OTHER_PRICES = POLICY.prices["smollm2-cpu-ngram"]


def _chat_chunk(text: str, ids: list[int], done: int, *, first: bool = False) -> str:
    chunk = {
        "id": "chatcmpl-A",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "smollm2-cpu",
        "choices": [
            {"index": 0, "delta": {"content": text}, "finish_reason": None, "token_ids": ids}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": done, "total_tokens": 5 + done},
    }
    if first:
        chunk["prompt_token_ids"] = PROMPT_IDS
    return f"data: {json.dumps(chunk)}\n\n"


def _completion_chunk(text: str, ids: list[int], done: int, finish: str | None = None) -> str:
    chunk = {
        "id": "cmpl-B",
        "object": "text_completion",
        "created": 9,
        "model": "smollm2-cpu-ngram",
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "token_ids": ids}],
        "usage": {"prompt_tokens": 8, "completion_tokens": done, "total_tokens": 8 + done},
    }
    return f"data: {json.dumps(chunk)}\n\n"


def _final(prompt: int, done: int, model: str) -> str:
    chunk = {
        "id": "cmpl-B",
        "object": "text_completion",
        "created": 9,
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": 0},
    }
    return f"data: {json.dumps(chunk)}\n\n"


def _texts(events: list[str]) -> str:
    out = ""
    for e in events:
        data = openai_io.sse_json(e)
        for c in (data or {}).get("choices") or []:
            out += (c.get("delta") or {}).get("content") or c.get("text") or ""
    return out


class Engines:
    """The continuation side: records what was asked and returns a scripted stream."""

    def __init__(self, engine_stream, packets: list[str] | None):
        self.engine_stream = engine_stream
        self.packets = packets
        self.asked: list[tuple[fo.StreamProgress, list[str]]] = []
        self.down: list[str] = []

    async def start(self, progress, failed):
        self.asked.append((progress, failed))
        if self.packets is None:
            return None
        stream = self.engine_stream(list(self.packets))
        return Continuation(stream.packets.pop(0), stream, "smollm2-cpu-ngram", OTHER_PRICES)

    def failover(self, *, migratable: bool = True) -> StreamFailover:
        return StreamFailover(
            endpoint="chat",
            migratable=migratable,
            start=self.start,
            on_failure=lambda profile, reason: self.down.append(profile),
        )


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    yield h
    h.ledger.close()


@pytest.mark.parametrize("failure", ["exception", "error_event"])
async def test_stream_cut_midway_is_continued_elsewhere_without_gap_or_repeat(
    harness, engine_stream, failure
):
    head = [_chat_chunk("Hel", [10], 1, first=True), _chat_chunk("lo", [11], 2)]
    if failure == "exception":
        stream = engine_stream(head, fail_with=RuntimeError("EngineDeadError"))
    else:
        dead = {"error": {"message": "EngineCore died", "type": "InternalServerError", "code": 500}}
        stream = engine_stream([*head, f"data: {json.dumps(dead)}\n\n"])
    engines = Engines(
        engine_stream,
        [
            _completion_chunk(" wor", [12], 1),
            _completion_chunk("ld", [13], 2, finish="stop"),
            _final(7, 2, "smollm2-cpu-ngram"),
            "data: [DONE]\n\n",
        ],
    )
    events = [
        e
        async for item in harness.relay(stream, wants_usage=True, failover=engines.failover())
        for e in openai_io.split_sse(item)
    ]

    assert _texts(events) == "Hello world"
    assert events[-1] == "data: [DONE]\n\n" and events.count("data: [DONE]\n\n") == 1
    chunks = [openai_io.sse_json(e) for e in events[:-1]]
    assert all(c["id"] == "chatcmpl-A" and c["model"] == "smollm2-135m-instruct" for c in chunks)
    assert all("token_ids" not in ch for c in chunks for ch in c["choices"])
    assert chunks[-2]["object"] == "chat.completion.chunk"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    # the client's usage counts the whole request from its own prompt
    assert chunks[-1]["usage"]["prompt_tokens"] == 5
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    # the continuation got the prompt ids and the two tokens already sent
    progress, failed = engines.asked[0]
    assert progress.prompt_token_ids + progress.generated_token_ids == [*PROMPT_IDS, 10, 11]
    assert failed == ["smollm2-cpu"] and engines.down == ["smollm2-cpu"]
    row = harness.row()
    assert row.status == "migrated"
    # leg A: prompt 5 + 2 tokens; leg B: prompt 5 + 2 re-sent + 2 new tokens
    assert (row.prompt_tokens, row.output_tokens) == (5 + 7, 2 + 2)
    expected = PRICES.cost_usd(5, 2) + OTHER_PRICES.cost_usd(7, 2)
    assert row.cost_usd == pytest.approx(expected)


@pytest.mark.parametrize("migratable", [True, False])
async def test_without_a_continuation_the_stream_ends_with_one_error_event(
    harness, engine_stream, migratable
):
    stream = engine_stream(
        [_chat_chunk("Hel", [10], 1, first=True)], fail_with=RuntimeError("EngineDeadError")
    )
    engines = Engines(engine_stream, None)
    events = [
        e
        async for item in harness.relay(
            stream, wants_usage=True, failover=engines.failover(migratable=migratable)
        )
        for e in openai_io.split_sse(item)
    ]
    assert _texts(events) == "Hel"
    error = openai_io.sse_json(events[-1])["error"]
    assert error["code"] == "engine_failed" and "smollm2-cpu" in error["message"]
    assert "data: [DONE]\n\n" not in events
    assert len(engines.asked) == (1 if migratable else 0)
    row = harness.row()
    assert row.status == "error" and row.output_tokens == 1


def test_engine_failed_separates_engine_failures_from_client_errors():
    assert fo.engine_failed(RuntimeError("dead"))
    assert fo.engine_failed({"error": {"message": "x", "code": 500}})
    assert fo.engine_failed({"error": {"message": "x", "type": "EngineDeadError"}})
    assert not fo.engine_failed({"error": {"message": "bad temperature", "code": 400}})
    assert not fo.engine_failed({"choices": []})


def test_continuation_body_carries_sampling_and_the_remaining_budget():
    progress = fo.StreamProgress(prompt_token_ids=[1, 2, 3], generated_token_ids=[7, 8])
    engine = {"temperature": 0, "seed": 3, "max_tokens": 10, "min_tokens": 4, "stop": ["\n"]}
    body = fo.continuation_body(
        engine, progress, max_tokens=10, target_profile="b", max_model_len=2048, request_id="r-m1"
    )
    assert body["prompt"] == [1, 2, 3, 7, 8] and body["model"] == "b"
    assert body["max_tokens"] == 8 and body["min_tokens"] == 2
    assert (body["temperature"], body["seed"], body["stop"]) == (0, 3, ["\n"])
    assert body["return_token_ids"] is True and body["stream"] is True

    def cont(max_tokens: int | None, progress: fo.StreamProgress, room: int = 99) -> object:
        return fo.continuation_body(
            engine,
            progress,
            max_tokens=max_tokens,
            target_profile="b",
            max_model_len=room,
            request_id="r",
        )

    assert cont(2, progress) is None  # the budget is spent
    assert cont(10, fo.StreamProgress()) is None  # no prompt ids
    assert cont(None, progress, room=9)["max_tokens"] == 4  # no cap: the context is the bound


def test_migratable_refuses_what_depends_on_the_cut():
    def migratable(extra: dict) -> bool:
        body = {"messages": [{"role": "user", "content": "x"}], **extra}
        return fo.migratable(read_spec(body, "chat"), body)

    assert migratable({"temperature": 0})
    assert not migratable({"n": 2})
    assert not migratable({"tools": [{"type": "function"}]})
    assert not migratable({"logprobs": True})
    assert not migratable({"presence_penalty": 0.5})


def test_profile_health_marks_down_until_up_and_spaces_probes():
    now = [100.0]
    health = fo.ProfileHealth(probe_interval_s=1.0, clock=lambda: now[0])
    assert health.mark_down("a", "EngineDeadError") and not health.mark_down("a", "again")
    assert health.is_down("a") and health.probe_due() == []
    now[0] += 1.5
    assert health.probe_due() == ["a"] and health.probe_due() == []
    assert health.down()["a"] == {"since_s": 1.5, "reason": "EngineDeadError"}
    health.mark_up("a")
    assert not health.is_down("a") and health.down() == {}


def test_engine_usage_adds_per_field():
    total = EngineUsage(5, 1, 2, 0) + EngineUsage(7, 0, 2, 1)
    assert total == EngineUsage(12, 1, 4, 1)
    assert LOCAL.profile("smollm2-cpu-ngram").served_model_name == "smollm2-135m-instruct"
