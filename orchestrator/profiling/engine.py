"""The edge: drive a profile's real vLLM engine in-process (no Ray, no HTTP).

The engine is vLLM's `AsyncLLM` built from `AsyncEngineArgs(model, **engine_kwargs(profile))`
with the profile's replica environment (OMP threads, CPU KV cache, ...) applied first: the same
engine arguments and environment a Serve replica of the profile gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
import uuid
from collections.abc import Iterator

from orchestrator.catalog.schema import Profile
from orchestrator.engines.config import engine_kwargs, replica_env
from orchestrator.models import resolve_model
from orchestrator.paths import PROJECT_ROOT, SHARED_DATA
from orchestrator.profiling.sweep import RequestTiming, StepResult, SweepStep


@contextlib.contextmanager
def profile_environment(profile: Profile) -> Iterator[dict[str, str]]:
    """Apply the replica environment of `profile` to this process; restore it on exit."""
    env = replica_env(profile)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _corpus_texts() -> list[str]:
    """Natural text to cut prompts from: the shared prompt sets' answers, else the repo docs."""
    texts: list[str] = []
    alpaca = SHARED_DATA / "alpaca-eval"
    if alpaca.is_dir():
        for path in sorted(alpaca.glob("*.json"))[:2]:
            try:
                texts += [
                    row["output"] for row in json.loads(path.read_text()) if row.get("output")
                ]
            except (OSError, ValueError, KeyError, TypeError):
                continue
    if not texts:
        for path in sorted((PROJECT_ROOT / "docs").glob("*.md")) + [PROJECT_ROOT / "README.md"]:
            if path.is_file():
                texts.append(path.read_text(encoding="utf-8"))
    return texts


class PromptSource:
    """Token-exact prompts cut from natural text; each call returns a fresh stretch."""

    def __init__(self, tokenizer) -> None:
        ids: list[int] = []
        for text in _corpus_texts():
            ids += tokenizer.encode(text, add_special_tokens=False)
            if len(ids) > 400_000:
                break
        if len(ids) < 4096:
            raise RuntimeError("not enough text to cut prompts from")
        self._ids = ids
        self._pos = 0

    def take(self, n: int) -> list[int]:
        if self._pos + n > len(self._ids):
            self._pos = 0
        out = self._ids[self._pos : self._pos + n]
        self._pos += n + 7  # an odd stride: consecutive prompts share no aligned block
        return out


class ProfileEngine:
    """A started engine for one profile; `await run_step(step)` measures one sweep step."""

    def __init__(self, profile: Profile, engine, tokenizer) -> None:
        self.profile = profile
        self.engine = engine
        self.tokenizer = tokenizer
        self.prompts = PromptSource(tokenizer)

    @classmethod
    def start(cls, profile: Profile, model_location: str | None = None) -> ProfileEngine:
        """Build the engine (call inside `profile_environment(profile)`)."""
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        location = model_location or resolve_model(profile.model)
        kwargs = engine_kwargs(profile, location)
        # the profile's OpenAI-frontend arguments (tool_call_parser, enable_auto_tool_choice)
        # are not engine arguments and do not change its speed: the engine gets the rest
        engine_fields = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
        kwargs = {k: v for k, v in kwargs.items() if k in engine_fields}
        args = AsyncEngineArgs(
            model=location, served_model_name=[profile.name], disable_log_stats=True, **kwargs
        )
        engine = AsyncLLM.from_engine_args(args)
        tokenizer = AutoTokenizer.from_pretrained(kwargs.get("tokenizer") or location)
        return cls(profile, engine, tokenizer)

    def shutdown(self) -> None:
        self.engine.shutdown()

    async def one(self, token_ids: list[int], max_tokens: int, t0: float) -> RequestTiming:
        """Send one request; times relative to `t0` (time.perf_counter())."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
        first = None
        final = None
        async for out in self.engine.generate(
            {"prompt_token_ids": token_ids}, params, request_id=uuid.uuid4().hex
        ):
            if first is None and out.outputs and out.outputs[0].token_ids:
                first = time.perf_counter() - t0
            final = out
        done = time.perf_counter() - t0
        tokens = len(final.outputs[0].token_ids) if final and final.outputs else 0
        cached = int(getattr(final, "num_cached_tokens", 0) or 0) if final else 0
        return RequestTiming(
            prompt_tokens=len(token_ids),
            output_tokens=tokens,
            first_token_s=first if first is not None else done,
            finished_s=done,
            cached_tokens=cached,
        )

    async def run_step(self, step: SweepStep) -> StepResult:
        started = time.perf_counter()
        timings: list[RequestTiming] = []
        if step.kind == "decode":
            prompts = [self.prompts.take(step.prompt_tokens) for _ in range(step.batch)]
            t0 = time.perf_counter()
            timings = list(
                await asyncio.gather(*(self.one(p, step.output_tokens, t0) for p in prompts))
            )
        else:
            for _ in range(step.repeats):
                if step.kind == "prefill":
                    prompt = self.prompts.take(step.prompt_tokens)
                else:  # prefix: warm the cache with the shared part, then send it + a new suffix
                    shared = self.prompts.take(step.prompt_tokens - step.suffix_tokens)
                    await self.one(shared + self.prompts.take(step.suffix_tokens), 1, 0.0)
                    prompt = shared + self.prompts.take(step.suffix_tokens)
                t0 = time.perf_counter()
                timings.append(await self.one(prompt, step.output_tokens, t0))
        return StepResult(step, tuple(timings), time.perf_counter() - started)

    async def warm_up(self) -> None:
        """One short request first: the first pass pays for lazy initialisation."""
        await self.one(self.prompts.take(32), 8, time.perf_counter())
