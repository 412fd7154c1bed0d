"""Shared pieces for the serving tests: vLLM-shaped SSE chunks, a fake profile engine, and
the request path's executor built with fakes (`ingress`, `make_executor`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.ledger import UsageLedger
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import load_policy_text
from orchestrator.request import plan as plan_module
from orchestrator.serving.executor import RequestExecutor
from orchestrator.telemetry.metrics import OrchestratorMetrics
from tests.policy.policy_helpers import policy_text
from tests.predictions import prediction
from tests.usage_rows import usage_row


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


def error_of(response: Any) -> dict[str, Any]:
    """The OpenAI error object of a refusal answered as a response (`{"error": {...}}`)."""
    return json.loads(response.body)["error"]


LOCAL = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")
POLICY_TEXT = policy_text("""
default_tenant:
  name: default
  cost_cap_usd: 0.05
  max_tokens: 512
  budgets: {per_hour_usd: 1.0, per_day_usd: 5.0, per_month_usd: 500.0}
""")
_TINY = ", ".join(
    f"{c}: {{input_tokens: 1, output_tokens: 1}}"
    for c in ("standard", "long_form", "reasoning", "long_context")
)
# A policy line: one-token reference requests, so that the load-time check of a latency target
# (met idle for each class's reference request) passes targets a loaded server still misses.
TINY_REFERENCE = f"reference_requests: {{{_TINY}}}"
FAMILY = "smollm2-135m-instruct"
MESSAGES = [{"role": "user", "content": "Name a colour."}]


class FakePredictor:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.observed: list[Any] = []

    def predict_many(self, body: dict[str, Any], profiles: list[Any]) -> dict[str, Any]:
        self.calls.append(body)
        return {p.name: prediction() for p in profiles}

    def observe(
        self, profile: Any, prediction: Any, output: int, reasoning: int = 0, cap: Any = None
    ) -> None:
        self.observed.append((profile, output))


class FakeHandle:
    """`handle.chat.remote(request, None)` / `handle.completions.remote(...)` of a profile."""

    def __init__(self, streams: list[Any]):
        self.streams = streams
        self.requests: list[Any] = []
        self.chat = SimpleNamespace(remote=self._remote)
        self.completions = SimpleNamespace(remote=self._remote)

    def _remote(self, request: Any, raw_request_info: Any) -> Any:
        self.requests.append(request)
        return self.streams.pop(0)


def make_executor(
    tmp_path: Any, monkeypatch: Any, *, catalog: Any = LOCAL, policy_text: str = POLICY_TEXT
) -> RequestExecutor:
    """The request path's executor, built directly with its collaborators: the real policy,
    router, ledger and metrics; a fake predictor and engine handle (`ex.handle`); every
    profile ready; `ex.decide_calls` lists the router's decisions."""
    policy = load_policy_text(policy_text, "policy.yaml", catalog)
    handle = FakeHandle([])
    ex = RequestExecutor(
        catalog=catalog,
        policy_source=SimpleNamespace(current=policy),
        predictor=FakePredictor(),
        ledger=UsageLedger(tmp_path / "usage.sqlite3", synchronous="NORMAL"),
        metrics=OrchestratorMetrics(instance_id="test-0"),
        handles=lambda name: handle,
        ready={p.name: True for p in catalog.profiles},
        running={p.name: 1 for p in catalog.profiles},
    )
    ex.handle = handle
    ex.decide_calls = []
    real_decide = plan_module.decide

    def spy(*args: Any, **kwargs: Any) -> Any:
        ex.decide_calls.append(args)
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(plan_module, "decide", spy)
    return ex


@pytest.fixture
def ingress(tmp_path, monkeypatch):
    """`make_executor` on the local catalog and the tests' policy."""
    ex = make_executor(tmp_path, monkeypatch)
    yield ex
    ex.ledger.close()


async def serve_body(ex: RequestExecutor, body: Any, endpoint: str, headers: dict | None = None):
    """`body` (JSON-encoded unless bytes) through `ex.serve` as a client would send it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    return await ex.serve(hdrs, raw, endpoint, hdrs.get("x-request-id") or "req-test")


def use_policy(ex: RequestExecutor, text: str) -> None:
    """`ex` plans under the policy `text` (on the local catalog) from now on."""
    ex.policy_source = SimpleNamespace(current=load_policy_text(text, "policy.yaml", LOCAL))


def spent(usd: float) -> Callable[[RequestExecutor], None]:
    """Setup: the default tenant already spent `usd` in this hour (one ledger row)."""

    def setup(ex: RequestExecutor) -> None:
        ex.ledger.settle(usage_row("earlier", usd, tenant="default", profile="smollm2-cpu"))

    return setup


def busy(in_flight: int) -> Callable[[RequestExecutor], None]:
    """Setup: `in_flight` requests of other tenants on every local profile."""

    def setup(ex: RequestExecutor) -> None:
        for p in LOCAL.profiles:
            occupy(ex, p.name, in_flight)

    return setup


def occupy(ex: RequestExecutor, profile: str, n: int, tenant: str = "others") -> list[str]:
    """`n` requests of `tenant` in flight on `profile` (through the executor's load book);
    their request ids, `load-<profile>-<i>`."""
    ids = [f"load-{profile}-{i}" for i in range(n)]
    for request_id in ids:
        ex.load.begin(request_id, tenant, profile, 0.0)
    return ids
