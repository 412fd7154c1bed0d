"""The sweep a profile is measured with, and what one step records (pure data, no engine).

Three kinds of step, each a burst of requests sent together to an idle engine:
- `decode`: `batch` requests (short prompt, `output_tokens` each, EOS ignored) -> per-stream
  TPOT at that batch size, hence aggregate decode tokens/s as a function of concurrency;
- `prefill`: one request with a `prompt_tokens`-long prompt and one output token, repeated
  `repeats` times -> TTFT as a function of prompt length (slope = prefill speed, intercept =
  the fixed TTFT overhead);
- `prefix`: like `prefill`, but the prompt shares all but its last `suffix_tokens` with a
  prompt the engine has just seen (prefix cache warm) -> what a cached prompt token costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from orchestrator.catalog.schema import Profile

StepKind = Literal["decode", "prefill", "prefix"]

FULL_BATCHES = (1, 2, 4, 8, 16, 32, 64)
QUICK_BATCHES = (1, 2)


@dataclass(frozen=True, slots=True)
class SweepStep:
    kind: StepKind
    batch: int
    prompt_tokens: int
    output_tokens: int
    repeats: int = 1
    suffix_tokens: int = 0  # prefix steps: tokens after the shared (cached) prefix

    def label(self) -> str:
        if self.kind == "decode":
            return f"decode batch={self.batch} prompt={self.prompt_tokens} out={self.output_tokens}"
        if self.kind == "prefill":
            return f"prefill prompt={self.prompt_tokens} x{self.repeats}"
        return (
            f"prefix-reuse prompt={self.prompt_tokens} "
            f"(cached {self.prompt_tokens - self.suffix_tokens}) x{self.repeats}"
        )


@dataclass(frozen=True, slots=True)
class RequestTiming:
    """One request of a step; times in seconds from the step's start."""

    prompt_tokens: int
    output_tokens: int
    first_token_s: float
    finished_s: float
    cached_tokens: int = 0

    @property
    def tpot_s(self) -> float | None:
        """Mean time per output token after the first (None for a single-token answer)."""
        if self.output_tokens < 2:
            return None
        return (self.finished_s - self.first_token_s) / (self.output_tokens - 1)


@dataclass(frozen=True, slots=True)
class StepResult:
    step: SweepStep
    requests: tuple[RequestTiming, ...] = field(default_factory=tuple)
    wall_s: float = 0.0


def sweep_plan(profile: Profile, *, quick: bool = False) -> list[SweepStep]:
    """Steps for `profile`: batch sizes up to its `max_num_seqs`, prompts within its context."""
    cap = profile.max_num_seqs or max(FULL_BATCHES)
    room = profile.max_model_len - 8
    if quick:
        batches = [b for b in QUICK_BATCHES if b <= cap]
        decode_prompt, decode_out = min(32, room // 2), 16
        prefill_prompts = [p for p in (32, 128) if p + 1 <= room]
        prefix_prompt, repeats = min(272, room), 1
    else:
        batches = [b for b in FULL_BATCHES if b <= cap]
        if cap not in batches:
            batches.append(cap)
        decode_prompt, decode_out = min(128, room // 2), 64
        prefill_prompts = [p for p in (64, 256, 512, 1024) if p + 1 <= room]
        prefix_prompt, repeats = min(1024, room), 2
    steps = [SweepStep("decode", b, decode_prompt, decode_out) for b in batches]
    steps += [SweepStep("prefill", 1, p, 1, repeats=repeats) for p in prefill_prompts]
    steps.append(
        SweepStep(
            "prefix",
            1,
            prefix_prompt,
            1,
            repeats=repeats,
            suffix_tokens=max(1, prefix_prompt // 16),
        )
    )
    return steps
