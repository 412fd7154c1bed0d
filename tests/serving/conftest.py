"""Shared pieces for the serving tests: vLLM-shaped SSE chunks and a fake profile engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest


def sse_chunk(
    index: int = 0,
    content: str | None = "tok",
    *,
    completion_tokens: int | None = None,
    prompt_tokens: int = 12,
    model: str = "smollm2-cpu",
    finish_reason: str | None = None,
    role: str | None = None,
) -> str:
    """One chat stream event as vLLM writes it; `completion_tokens` adds per-chunk usage
    (`continuous_usage_stats`), cumulative for this choice."""
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    chunk: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
    }
    if completion_tokens is not None:
        chunk["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


def usage_chunk(prompt_tokens: int, completion_tokens: int, model: str = "smollm2-cpu") -> str:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"


class FakeEngineStream:
    """Stands in for a Serve `DeploymentResponseGenerator`: yields `packets`, then either ends,
    raises `fail_with`, or (`hang=True`) waits forever like an engine still generating."""

    def __init__(
        self,
        packets: list[Any],
        *,
        hang: bool = False,
        fail_with: BaseException | None = None,
    ):
        self.packets = list(packets)
        self.hang = hang
        self.fail_with = fail_with
        self.cancelled = False
        self.waiting = asyncio.Event()

    def __aiter__(self) -> FakeEngineStream:
        return self

    async def __anext__(self) -> Any:
        if self.packets:
            return self.packets.pop(0)
        if self.fail_with is not None:
            raise self.fail_with
        if self.hang:
            self.waiting.set()
            await asyncio.Event().wait()
        raise StopAsyncIteration

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def chunk() -> Callable[..., str]:
    return sse_chunk


@pytest.fixture
def final_usage() -> Callable[..., str]:
    return usage_chunk


@pytest.fixture
def engine_stream() -> type[FakeEngineStream]:
    return FakeEngineStream


def blue_completion() -> SimpleNamespace:
    """The engine's whole (non-streamed) chat answer "Blue.", 11 prompt + 3 output tokens, as
    the profile handle yields it (an object with `model_dump`, a fresh dict each call)."""
    payload = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "smollm2-cpu",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Blue."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }
    return SimpleNamespace(model_dump=lambda: json.loads(json.dumps(payload)))


@pytest.fixture
def chat_completion(engine_stream: type[FakeEngineStream]) -> Callable[[], FakeEngineStream]:
    """A new engine stream carrying `blue_completion()` per call."""
    return lambda: engine_stream([blue_completion()])
