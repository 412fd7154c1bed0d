"""The stream relay and its accounting, with a fake engine stream (the real engine is in e2e):
what a client sees, and what is charged when the stream ends early or runs to the end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.ledger import UsageLedger
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import load_policy_text
from orchestrator.serving import openai_io
from orchestrator.serving.accounting import (
    Accountant,
    EngineUsage,
    RequestSettlement,
    RequestTrace,
    StreamTally,
)
from orchestrator.serving.relay import StreamFailover, relay_stream

LOCAL = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")
POLICY = load_policy_text(
    "apiVersion: orchestrator/v1\nkind: Policy\ndefault_tenant: {name: default}\n",
    "policy.yaml",
    LOCAL,
)
PRICES = POLICY.prices["smollm2-cpu"]
PREDICTED_PROMPT_TOKENS = 30


class Harness:
    """One relayed request: its settlement writes to a real ledger; what it reports to the
    metrics and whether its reservation was released are recorded."""

    def __init__(self, tmp_path, request_id: str = "req-1"):
        self.ledger = UsageLedger(tmp_path / "usage.sqlite3", synchronous="NORMAL")
        self.trace = RequestTrace(request_id=request_id, tenant="default", profile="smollm2-cpu")
        self.observed: list[tuple[str, EngineUsage, float]] = []
        self.released = 0
        self.settlement = RequestSettlement(
            Accountant(self.ledger, None),
            self.trace,
            PRICES,
            profile=LOCAL.profile("smollm2-cpu"),
            prediction=None,
            max_tokens=None,
            release=self._release,
            observe=lambda status, usage, cost: self.observed.append((status, usage, cost)),
        )

    def _release(self) -> None:
        self.released += 1

    def relay(
        self,
        stream,
        *,
        wants_usage: bool = False,
        wants_continuous: bool = False,
        failover: StreamFailover | None = None,
    ):
        """Relay `stream` (its first packet already read, as the executor does) for this
        request, carried to another engine by `failover` if it fails."""
        first = stream.packets.pop(0)
        return relay_stream(
            first,
            stream,
            self.settlement,
            self.trace,
            engine_model="smollm2-cpu",
            shown_model="smollm2-135m-instruct",
            wants_usage=wants_usage,
            wants_continuous_usage=wants_continuous,
            prompt_tokens=PREDICTED_PROMPT_TOKENS,
            failover=failover,
        )

    def row(self):
        return self.ledger.get(self.trace.request_id)


async def events_of(relay) -> list[str]:
    """Every SSE event the client gets from `relay` (one write may carry several)."""
    return [event async for item in relay for event in openai_io.split_sse(item)]


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    yield h
    h.ledger.close()


def _engine_packets(chunk, final_usage, n_tokens: int = 6) -> list:
    """Role chunk, `n_tokens` one-token chunks with per-chunk usage, final usage, [DONE]; the
    middle ones batched in a list as Serve may deliver them."""
    tokens = [chunk(content=f"t{i}", completion_tokens=i + 1) for i in range(n_tokens)]
    return [
        chunk(role="assistant", content="", completion_tokens=0),
        tokens[0],
        tokens[1:3],
        *tokens[3:],
        final_usage(12, n_tokens),
        "data: [DONE]\n\n",
    ]


async def test_client_disconnect_is_charged_for_the_tokens_it_was_sent(
    harness, chunk, final_usage, engine_stream
):
    stream = engine_stream(_engine_packets(chunk, final_usage, n_tokens=40), hang=True)
    relay = harness.relay(stream)
    received: list[str] = []  # role + 4 tokens (one write per engine packet: t1 and t2 in one)
    while len(received) < 5:
        received += openai_io.split_sse(await relay.__anext__())
    await relay.aclose()  # what Starlette does when the client goes away

    assert [openai_io.sse_json(e)["choices"][0]["delta"]["content"] for e in received] == [
        "",
        "t0",
        "t1",
        "t2",
        "t3",
    ]
    row = harness.row()
    assert row.status == "cancelled"
    assert (row.prompt_tokens, row.output_tokens) == (12, 4)  # engine's own counts
    assert row.cost_usd == pytest.approx(PRICES.cost_usd(12, 4)) and row.cost_usd > 0
    assert stream.cancelled, "the engine request must be cancelled"
    assert harness.released == 1
    [(status, usage, cost)] = harness.observed  # the metrics see the same charge
    assert status == "cancelled" and usage.output_tokens == 4 and cost == row.cost_usd


async def test_cancelled_while_waiting_for_the_engine_is_charged_too(harness, chunk, engine_stream):
    packets = [chunk(role="assistant", content="", completion_tokens=0)]
    packets += [chunk(content="ab", completion_tokens=3 * (i + 1)) for i in range(3)]
    stream = engine_stream(packets, hang=True)  # speculative decoding: 3 tokens per chunk
    relay = harness.relay(stream)
    seen: list[str] = []

    async def consume() -> None:
        async for item in relay:
            seen.extend(openai_io.split_sse(item))

    task = asyncio.create_task(consume())
    await asyncio.wait_for(stream.waiting.wait(), 5)  # the relay now awaits the engine
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert len(seen) == 4
    row = harness.row()
    assert row.status == "cancelled" and row.output_tokens == 9 and row.prompt_tokens == 12
    assert row.cost_usd == pytest.approx(PRICES.cost_usd(12, 9))
    assert stream.cancelled


async def test_without_per_chunk_usage_output_chunks_are_counted_and_prompt_is_predicted(
    harness, chunk, engine_stream
):
    packets = [chunk(role="assistant", content="")]
    packets += [chunk(content=f"w{i}") for i in range(5)]
    stream = engine_stream(packets, fail_with=RuntimeError("engine died"))
    events = await events_of(harness.relay(stream))
    # no failover given: the stream ends with one OpenAI-style error event (issue 15)
    assert "engine died" in openai_io.sse_json(events[-1])["error"]["message"]
    row = harness.row()
    assert row.status == "error"
    assert (row.prompt_tokens, row.output_tokens) == (PREDICTED_PROMPT_TOKENS, 5)
    assert row.cost_usd == pytest.approx(PRICES.cost_usd(PREDICTED_PROMPT_TOKENS, 5))


async def test_complete_stream_is_settled_once_from_the_final_usage(
    harness, chunk, final_usage, engine_stream
):
    stream = engine_stream(_engine_packets(chunk, final_usage, n_tokens=6))
    events = await events_of(harness.relay(stream))

    row = harness.row()
    assert row.status == "ok" and (row.prompt_tokens, row.output_tokens) == (12, 6)
    assert harness.released == 1 and len(harness.observed) == 1
    assert not stream.cancelled
    # the client asked for no usage: none on any chunk (per-chunk usage was ours), no usage
    # chunk; every chunk names the model the client asked for; [DONE] once, at the end
    assert events[-1] == "data: [DONE]\n\n" and events.count("data: [DONE]\n\n") == 1
    data = [openai_io.sse_json(e) for e in events[:-1]]
    assert len(data) == 7 and all("usage" not in d and d["choices"] for d in data)
    assert {d["model"] for d in data} == {"smollm2-135m-instruct"}
    text = "".join(d["choices"][0]["delta"]["content"] for d in data)
    assert text == "t0t1t2t3t4t5"


async def test_usage_shown_as_asked_with_cost_on_the_final_chunk(
    tmp_path, chunk, final_usage, engine_stream
):
    only_final = Harness(tmp_path / "a")
    events = await events_of(
        only_final.relay(engine_stream(_engine_packets(chunk, final_usage)), wants_usage=True)
    )
    data = [openai_io.sse_json(e) for e in events[:-1]]
    assert [("usage" in d) for d in data] == [False] * 7 + [True]
    assert data[-1]["choices"] == [] and data[-1]["model"] == "smollm2-135m-instruct"
    assert data[-1]["usage"]["cost_usd"] == pytest.approx(only_final.row().cost_usd, abs=1e-10)

    continuous = Harness(tmp_path / "b")
    events = await events_of(
        continuous.relay(
            engine_stream(_engine_packets(chunk, final_usage)),
            wants_usage=True,
            wants_continuous=True,
        )
    )
    data = [openai_io.sse_json(e) for e in events[:-1]]
    assert all("usage" in d for d in data)
    assert [d["usage"]["completion_tokens"] for d in data[1:-1]] == [1, 2, 3, 4, 5, 6]
    only_final.ledger.close()
    continuous.ledger.close()


async def test_disconnect_after_the_usage_chunk_keeps_the_ok_record(
    harness, chunk, final_usage, engine_stream
):
    packets = _engine_packets(chunk, final_usage, n_tokens=2)[:-1]  # no [DONE] yet
    stream = engine_stream(packets, hang=True)
    relay = harness.relay(stream, wants_usage=True)
    for _ in range(4):  # role, t0, t1, the usage chunk
        await relay.__anext__()
    await relay.aclose()
    row = harness.row()
    assert row.status == "ok" and row.output_tokens == 2
    assert not stream.cancelled and len(harness.observed) == 1


def test_tally_takes_the_larger_count_per_choice_and_sums_choices(chunk):
    tally = StreamTally()
    assert tally.usage(7) == EngineUsage(prompt_tokens=7)  # nothing seen: the prediction's
    for event in (
        chunk(0, "", role="assistant", completion_tokens=0, prompt_tokens=20),
        chunk(1, "", role="assistant", completion_tokens=0, prompt_tokens=20),
        chunk(0, "abc", completion_tokens=4, prompt_tokens=20),  # 4 tokens in one chunk
        chunk(1, "x", completion_tokens=1, prompt_tokens=20),
        chunk(1, "y", completion_tokens=2, prompt_tokens=20),
        chunk(1, "z"),  # a chunk without usage still counts as at least one token
        chunk(1, "w"),
        chunk(0, None, finish_reason="length"),
        'data: {"error": {"message": "boom"}}\n\n',
        "data: [DONE]\n\n",
    ):
        data = openai_io.sse_json(event)
        if data is not None:
            tally.add(data)
    usage = tally.usage(7)
    # choice 0: usage says 4, 2 chunks carried output; choice 1: usage 2, 4 chunks
    assert usage == EngineUsage(prompt_tokens=20, output_tokens=4 + 4)


def test_tally_counts_token_ids_when_the_engine_sends_no_per_chunk_usage():
    """A stream that may migrate asks for token ids and no per-chunk usage: the ids count the
    tokens exactly (a speculative chunk carries several) and the prompt ids the prompt."""
    tally = StreamTally()
    tally.add(
        {
            "prompt_token_ids": list(range(23)),
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        }
    )
    tally.add({"choices": [{"index": 0, "delta": {"content": "a b c"}, "token_ids": [5, 6, 7]}]})
    tally.add({"choices": [{"index": 0, "delta": {"content": "d"}, "token_ids": [8]}]})
    assert tally.usage(7) == EngineUsage(prompt_tokens=23, output_tokens=4)
    completions = StreamTally()  # completions put the prompt ids on the choice
    completions.add(
        {"choices": [{"index": 0, "text": "x", "prompt_token_ids": [1, 2], "token_ids": [3]}]}
    )
    assert completions.usage(7) == EngineUsage(prompt_tokens=2, output_tokens=1)


def test_tally_reads_reasoning_tokens_and_completion_text():
    tally = StreamTally()
    tally.add(
        {
            "choices": [{"index": 0, "delta": {"reasoning": "hmm"}}],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 3,
                "completion_tokens_details": {"reasoning_tokens": 3},
            },
        }
    )
    tally.add({"choices": [{"index": 0, "text": "hello"}]})  # /v1/completions shape
    tally.add({"choices": [{"index": 0, "text": ""}]})  # empty text: no output
    assert tally.usage(0) == EngineUsage(prompt_tokens=5, output_tokens=3, reasoning_tokens=3)


async def test_settlement_acts_once(harness):
    first = await harness.settlement.settle(EngineUsage(10, 0, 5, 0))
    again = await harness.settlement.settle(EngineUsage(99, 0, 99, 0), "cancelled")
    assert first == again == pytest.approx(PRICES.cost_usd(10, 5))
    assert harness.released == 1 and len(harness.observed) == 1
    assert harness.row().status == "ok" and harness.ledger.count() == 1
    assert datetime.now(UTC) >= harness.row().finished_at


def _raw_chunk(delta, *, finish=None, completion_tokens=None):
    data = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "smollm2-cpu",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if completion_tokens is not None:
        data["usage"] = {"prompt_tokens": 12, "completion_tokens": completion_tokens}
    return openai_io.sse_event(data)


async def test_reasoning_and_tool_call_deltas_relay_as_sent_and_are_priced_as_output(
    harness, engine_stream
):
    """What a profile with reasoning_parser and tool_call_parser streams: `reasoning` deltas,
    then tool-call deltas; relayed as vLLM sent them, reasoning tokens charged as output."""
    deltas = [
        {"role": "assistant", "content": ""},
        {"reasoning": "The user wants"},
        {"reasoning": " weather."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Oslo"}'}}]},
    ]
    packets = [_raw_chunk(d, completion_tokens=i) for i, d in enumerate(deltas)]
    packets[-1] = _raw_chunk(deltas[-1], finish="tool_calls", completion_tokens=9)
    final = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "smollm2-cpu",
        "choices": [],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 9,
            "total_tokens": 21,
            "completion_tokens_details": {"reasoning_tokens": 5},
        },
    }
    packets += [openai_io.sse_event(final), "data: [DONE]\n\n"]
    events = await events_of(harness.relay(engine_stream(packets), wants_usage=True))
    chunks = [openai_io.sse_json(e) for e in events[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == deltas
    assert all(c["model"] == "smollm2-135m-instruct" for c in chunks)
    usage = chunks[-1]["usage"]
    expected = 12 * PRICES.input_usd_per_token + 9 * PRICES.output_usd_per_token
    assert usage["cost_usd"] == pytest.approx(expected, rel=1e-6)
    row = harness.row()
    assert (row.output_tokens, row.reasoning_tokens) == (9, 5)


async def test_one_write_per_engine_packet(harness, chunk, final_usage, engine_stream):
    """A packet Serve batched (several events) reaches the client as one write: the ingress
    sends the proxy no more messages than the engine sent it."""
    packets = _engine_packets(chunk, final_usage, n_tokens=6)  # the third packet holds two
    writes = [item async for item in harness.relay(engine_stream(packets))]

    assert [len(openai_io.split_sse(w)) for w in writes] == [1, 1, 2, 1, 1, 1, 1]
    assert writes[-1] == "data: [DONE]\n\n"
