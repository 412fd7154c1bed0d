"""Responses API <-> chat translation (pure): requests, whole answers, streams, the store."""

from __future__ import annotations

import asyncio
import json

import pytest

from orchestrator.serving import responses_api as ra
from orchestrator.serving.errors import OrchestratorHTTPError

TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _exchange(body, store=None, tenant="default"):
    return ra.Exchange.open(body, tenant, store or ra.ResponseStore())


def test_string_input_and_options_become_a_chat_request():
    body = _exchange(
        {
            "model": "smollm2-135m-instruct",
            "input": "hi",
            "instructions": "be brief",
            "max_output_tokens": 20,
            "temperature": 0.5,
            "reasoning": {"effort": "low"},
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        }
    ).chat_body()
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert body["model"] == "smollm2-135m-instruct"
    assert body["max_tokens"] == 20 and body["temperature"] == 0.5
    assert body["reasoning_effort"] == "low"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object"}},
    }
    assert body["stream"] is False


def test_items_tools_and_tool_results_map_to_chat_messages():
    body = _exchange(
        {
            "input": [
                {"role": "developer", "content": "use tools"},
                {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            ],
            "tools": [TOOL],
            "tool_choice": {"type": "function", "name": "get_weather"},
        }
    ).chat_body()
    assert body["messages"] == [
        {"role": "system", "content": "use tools"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert body["tools"][0] == {
        "type": "function",
        "function": {k: v for k, v in TOOL.items() if k != "type"},
    }
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].function.type"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": [{"type": "nope"}]}, "input"),
    ],
)
def test_unsupported_or_invalid_fields_are_400_naming_them(body, param):
    with pytest.raises(OrchestratorHTTPError) as exc:
        ra.parse_request(body)
    assert exc.value.status == 400
    assert exc.value.param is not None and exc.value.param.startswith(param.split("[")[0])


CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "model": "smollm2-135m-instruct",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": "Let me check.",
                "reasoning": "The user wants weather.",
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "completion_tokens_details": {"reasoning_tokens": 5},
        "cost_usd": 0.0001,
    },
}


def test_chat_answer_becomes_a_response_with_usage_and_cost():
    store = ra.ResponseStore()
    ex = _exchange({"input": "weather in Oslo?", "tools": [TOOL], "metadata": {"k": "v"}}, store)
    resp = ex.from_chat(json.loads(json.dumps(CHAT_ANSWER)), store).model_dump(mode="json")
    assert resp["object"] == "response" and resp["status"] == "completed"
    assert [o["type"] for o in resp["output"]] == ["reasoning", "message", "function_call"]
    assert resp["output"][1]["content"][0] == {
        "type": "output_text",
        "text": "Let me check.",
        "annotations": [],
    }
    call = resp["output"][2]
    assert (call["call_id"], call["name"], call["arguments"]) == (
        "call_9",
        "get_weather",
        '{"city":"Oslo"}',
    )
    assert resp["usage"] == {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 42,
        "cost_usd": 0.0001,
    }
    assert resp["metadata"] == {"k": "v"} and resp["tools"][0]["name"] == "get_weather"


def test_length_finish_is_incomplete():
    answer = {
        "model": "m",
        "choices": [{"finish_reason": "length", "message": {"content": "abc"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
    }
    store = ra.ResponseStore()
    resp = _exchange({"input": "x", "max_output_tokens": 3}, store).from_chat(answer, store)
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"


def test_previous_response_id_continues_the_stored_conversation():
    store = ra.ResponseStore()
    first = _exchange({"input": "my name is Ada", "instructions": "be kind"}, store)
    answer = {"model": "m", "choices": [{"message": {"content": "Hi Ada"}}], "usage": None}
    resp = first.from_chat(answer, store)
    second = _exchange({"input": "what is my name?", "previous_response_id": resp.id}, store)
    assert second.chat_body()["messages"] == [  # instructions are not carried over
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Hi Ada"},
        {"role": "user", "content": "what is my name?"},
    ]


def test_unknown_unstored_or_foreign_previous_response_is_a_400():
    store = ra.ResponseStore()
    answer = {"model": "m", "choices": [{"message": {"content": "ok"}}]}
    not_stored = _exchange({"input": "a", "store": False}, store)
    not_stored.from_chat(answer, store)
    stored = _exchange({"input": "a"}, store, tenant="acme")
    stored.from_chat(answer, store)
    for rid, tenant in (
        ("resp_nope", "acme"),
        (not_stored.response_id, "default"),
        (stored.response_id, "other"),
    ):
        with pytest.raises(OrchestratorHTTPError) as exc:
            _exchange({"input": "b", "previous_response_id": rid}, store, tenant=tenant)
        assert exc.value.status == 400 and exc.value.param == "previous_response_id"


def test_store_is_bounded():
    store = ra.ResponseStore(capacity=2)
    for i in range(3):
        store.put(f"r{i}", ra.StoredResponse("t", ()))
    with pytest.raises(OrchestratorHTTPError):
        store.history("r0", "t")
    assert store.history("r2", "t") == []


def _chunk(delta=None, finish=None, usage=None, choices=True):
    data = {"id": "c", "object": "chat.completion.chunk", "model": "m"}
    data["choices"] = (
        [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    )
    if usage is not None:
        data["usage"] = usage
    return f"data: {json.dumps(data)}\n\n"


def _events(lines):
    out = []
    for block in lines:
        head, data = block.strip().split("\n", 1)
        event = json.loads(data.removeprefix("data: "))
        assert head == f"event: {event['type']}"
        out.append(event)
    return out


def _run(streamer, packets):
    async def gen():
        for p in packets:
            yield p

    async def collect():
        return [e async for e in streamer.relay(gen())]

    return _events(asyncio.run(collect()))


def test_stream_of_reasoning_text_and_tool_call_events():
    store = ra.ResponseStore()
    ex = _exchange({"input": "weather?", "tools": [TOOL], "stream": True}, store)
    packets = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning": "think "}) + _chunk({"reasoning": "more"}),
        _chunk({"content": "Let "}),
        _chunk({"content": "me."}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        _chunk(
            {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]},
            finish="tool_calls",
        ),
        _chunk(
            choices=False,
            usage={
                "prompt_tokens": 5,
                "completion_tokens": 9,
                "total_tokens": 14,
                "cost_usd": 0.002,
            },
        ),
        "data: [DONE]\n\n",
    ]
    events = _run(ra.ResponseStreamer(ex, store, "smollm2"), packets)
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert (
        "".join(e["delta"] for e in events if e["type"] == "response.reasoning_text.delta")
        == "think more"
    )
    assert (
        "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        == "Let me."
    )
    args = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert args[0]["arguments"] == '{"city":"Oslo"}' and args[0]["name"] == "get_weather"
    final = events[-1]["response"]
    assert [o["type"] for o in final["output"]] == ["reasoning", "message", "function_call"]
    assert [o["output_index"] for o in events if o["type"] == "response.output_item.added"] == [
        0,
        1,
        2,
    ]
    assert final["usage"]["output_tokens"] == 9 and final["usage"]["cost_usd"] == 0.002
    # the streamed answer is stored for previous_response_id
    nxt = _exchange({"input": "thanks", "previous_response_id": final["id"]}, store)
    assert (
        nxt.chat_body()["messages"][1]["tool_calls"][0]["function"]["arguments"]
        == '{"city":"Oslo"}'
    )


def test_stream_cut_short_has_no_completed_event():
    store = ra.ResponseStore()
    ex = _exchange({"input": "x", "stream": True}, store)
    events = _run(ra.ResponseStreamer(ex, store, "m"), [_chunk({"content": "a"})])
    assert events[-1]["type"] == "response.output_text.delta"
