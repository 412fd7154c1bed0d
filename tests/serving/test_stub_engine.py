"""The load-test stub engine: catalog validation, its LLMConfig, and what it sends (vLLM's
chunk shapes, token ids, usage, limits), driven through the engine protocol without Ray."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from orchestrator.catalog import Profile, load_catalog
from orchestrator.engines.config import llm_config_dict
from orchestrator.engines.stub import is_stub, stub_settings
from orchestrator.serving.stub_engine import StubEngine

ROOT = Path(__file__).resolve().parents[2]
STUB = load_catalog(ROOT / "deployments" / "stub.yaml").profiles[0]


def _profile(**update) -> Profile:
    data = STUB.model_dump(mode="json", exclude_none=True)
    data.update(update)
    return Profile.model_validate(data)


def _engine(**update) -> StubEngine:
    config = SimpleNamespace(experimental_configs=stub_settings(_profile(**update)))
    engine = StubEngine(config)
    asyncio.run(engine.start())
    return engine


def _chat(**fields):
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    body = {"model": "stub", "messages": [{"role": "user", "content": "Hello there"}], **fields}
    return ChatCompletionRequest.model_validate(body)


def _collect(gen) -> list:
    async def run():
        return [item async for item in gen]

    return asyncio.run(run())


def _chunks(items: list[str]) -> list[dict]:
    assert items[-1] == "data: [DONE]\n\n"
    return [json.loads(item[len("data: ") :]) for item in items[:-1]]


def test_stub_catalog_loads_and_selects_the_stub_engine():
    config = llm_config_dict(STUB, "/models/x")
    assert is_stub(SimpleNamespace(**config))
    settings = config["experimental_configs"]["orchestrator_stub_engine"]
    assert settings["timing"] == {"ttft_ms": 50.0, "tokens_per_s": 200.0, "output_tokens": 16}
    assert settings["max_num_seqs"] == 256 and settings["max_model_len"] == 4096
    plain = load_catalog(ROOT / "deployments" / "local.yaml").profiles[0]
    assert "experimental_configs" not in llm_config_dict(plain, "/models/x")


@pytest.mark.parametrize(
    ("update", "named"),
    [
        ({"speculative": {"method": "ngram"}}, "speculative"),
        ({"engine_args": {"enforce_eager": True}}, "engine_args"),
        ({"tool_call_parser": "pythonic"}, "tool_call_parser"),
        ({"accelerator": {"type": "L4", "count": 1}}, "accelerator.type"),
        ({"quantization": "fp8"}, "quantization"),
    ],
)
def test_fields_a_stub_would_ignore_are_refused(update, named):
    with pytest.raises(ValidationError, match=f"stub_engine runs no model: remove {named}"):
        _profile(**update)


def test_stub_timing_is_validated():
    with pytest.raises(ValidationError, match="tokens_per_s"):
        _profile(stub_engine={"tokens_per_s": 0})
    with pytest.raises(ValidationError, match="ttft_ms"):
        _profile(stub_engine={"ttft_ms": -1})


def test_stream_has_vllm_chunks_token_ids_and_usage():
    engine = _engine(stub_engine={"ttft_ms": 0, "tokens_per_s": 100000})
    request = _chat(
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True},
        return_token_ids=True,
    )
    chunks = _chunks(_collect(engine.chat(request)))
    first, tokens, usage = chunks[0], chunks[1:-1], chunks[-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["object"] == "chat.completion.chunk" and first["id"].startswith("chatcmpl-")
    prompt_tokens = len(first["prompt_token_ids"])
    assert first["usage"] == {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens,
        "completion_tokens": 0,
    }
    assert len(tokens) == 5
    assert [c["usage"]["completion_tokens"] for c in tokens] == [1, 2, 3, 4, 5]
    assert all(len(c["choices"][0]["token_ids"]) == 1 for c in tokens)
    assert [c["choices"][0]["finish_reason"] for c in tokens] == [None] * 4 + ["length"]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5


def test_plain_stream_asks_for_nothing_extra():
    engine = _engine(stub_engine={"ttft_ms": 0, "tokens_per_s": 100000})
    chunks = _chunks(_collect(engine.chat(_chat(max_tokens=3, stream=True))))
    assert len(chunks) == 4  # role chunk + 3 tokens, no usage chunk
    assert all("usage" not in c and "token_ids" not in c["choices"][0] for c in chunks)


def test_non_streamed_answer_uses_output_tokens_without_max_tokens():
    engine = _engine(stub_engine={"ttft_ms": 0, "tokens_per_s": 100000, "output_tokens": 7})
    (answer,) = _collect(engine.chat(_chat()))
    assert answer.usage.completion_tokens == 7
    assert answer.choices[0].finish_reason == "length"
    (capped,) = _collect(engine.chat(_chat(max_tokens=2, return_token_ids=True)))
    assert capped.usage.completion_tokens == 2 and len(capped.choices[0].token_ids) == 2
    assert len(capped.prompt_token_ids) == capped.usage.prompt_tokens


def test_completions_with_several_prompts_and_choices():
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest

    engine = _engine(stub_engine={"ttft_ms": 0, "tokens_per_s": 100000})
    request = CompletionRequest(model="stub", prompt=["one", "two three"], n=2, max_tokens=3)
    (answer,) = _collect(engine.completions(request))
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert answer.usage.completion_tokens == 12


def test_prompt_beyond_the_context_is_a_400():
    engine = _engine(max_model_len=32, stub_engine={"ttft_ms": 0})
    (error,) = _collect(engine.chat(_chat(max_tokens=30)))
    assert error.error.code == 400 and "maximum context length is 32" in error.error.message


def test_max_num_seqs_queues_the_rest():
    engine = _engine(max_num_seqs=1, stub_engine={"ttft_ms": 0, "tokens_per_s": 100000})
    order: list[str] = []

    async def consume(tag: str) -> None:
        async for _ in engine.chat(_chat(max_tokens=4, stream=True)):
            order.append(tag)

    async def both() -> None:
        await asyncio.gather(consume("a"), consume("b"))

    asyncio.run(both())
    assert order == ["a"] * 6 + ["b"] * 6  # one sequence slot: b starts when a is done
