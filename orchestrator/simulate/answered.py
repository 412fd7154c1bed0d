"""Traffic of real prompts with their real answer lengths, on a real arrival process.

Token-count traces (Azure, Mooncake) carry no text: the replay attaches real prompts matched by
prompt length only (`prompts.py`), so the predictor reads text that says nothing of the
trace's answer lengths. Here every arrival of the Azure conversation trace (cut and
rate-scaled as `traffic.rescale` does) gets a prompt of one shared source, drawn uniformly
with replacement, with the length of that prompt's real answer by one model of the source,
counted as the predictor's training data counts it (`table.answer_tokens`), and the quality
tier its difficulty needs (`prompts.labelled_prompts`). The result is the simulator's JSONL
(`traffic.load_jsonl`): `arrival_s`, `messages`, `output_tokens`, `tier`, and `prompt_id`.

    prompts = answered_prompts("arena_hard")
    records = build_trace(prompts, azure_arrivals(AZURE_CONV, rate_scale=10, duration_s=900))
    write_jsonl(records, "trace.jsonl")

Simulate it with a predictor that was not trained on that source
(`orchestrator predictor train --leave-out arena_hard --out DIR`, then
`orchestrator simulate --trace trace.jsonl --predictor-artifact DIR`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.paths import SHARED_DATA

# the answering model whose lengths a source's trace carries, where the source has several
DEFAULT_ANSWERS = {
    "alpaca_eval": "gpt-4-1106-preview",  # AlpacaEval's reference model
    "arena_hard_v01": "gpt-4-0314",  # Arena-Hard v0.1's baseline
    "gsm8k": "gpt-4-1106-preview",
    "mt_bench": "gpt-4-1106-preview",
}
UNLABELLED_TIER = "medium"  # a prompt the difficulty labels do not cover (the policy default)


@dataclass(frozen=True, slots=True)
class AnsweredPrompt:
    """One real request body, the length of its real answer and the tier it needs."""

    prompt_id: str  # the training data's group, e.g. "arena:<uid>"
    messages: tuple[dict[str, str], ...]
    output_tokens: int
    tier: str


def answered_prompts(
    source: str, model: str | None = None, root: Path = SHARED_DATA
) -> list[AnsweredPrompt]:
    """Every request of `source` (a name of `offline.data.SOURCES`) answered by `model`
    (default: `DEFAULT_ANSWERS`, else the source's only model), in the data's order."""
    from orchestrator.predict.offline.data import load_examples
    from orchestrator.predict.offline.table import answer_tokens
    from orchestrator.simulate.prompts import labelled_prompts

    examples = load_examples(root, sources=[source])
    models = sorted({ex.model for ex in examples})
    chosen = model or DEFAULT_ANSWERS.get(source) or (models[0] if len(models) == 1 else None)
    if chosen not in models:
        raise ValueError(
            f"source {source!r}: choose the answering model from {', '.join(models)}"
            + (f" (not {chosen!r})" if chosen else "")
        )
    picked = [ex for ex in examples if ex.model == chosen]
    tiers = {text: tier for text, tier, _ in labelled_prompts(root)}
    counts = answer_tokens([ex.answer for ex in picked])
    return [
        AnsweredPrompt(
            prompt_id=ex.group,
            messages=tuple({"role": r, "content": t} for r, t in ex.messages),
            output_tokens=max(1, int(n)),
            # the first user turn carries the label (MT-Bench's second turn keeps the first's)
            tier=tiers.get(ex.messages[0][1], UNLABELLED_TIER),
        )
        for ex, n in zip(picked, counts, strict=True)
    ]


def azure_arrivals(
    path: Path | str,
    *,
    rate_scale: float = 1.0,
    duration_s: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Arrival times (s from the first) of an Azure trace CSV, cut to the first `duration_s`
    seconds, then at `rate_scale` times the rate (`traffic.scale_arrivals`), sorted."""
    from orchestrator.simulate.traffic import read_azure, scale_arrivals

    times = np.sort([at for at, _, _ in read_azure(path)])
    times = times - times[0] if len(times) else times
    if duration_s is not None:
        times = times[times < duration_s]
    if rate_scale == 1.0:
        return times
    scaled = scale_arrivals(times.tolist(), rate_scale, seed=seed)
    return np.sort(np.array([at for _, at in scaled]))


def build_trace(
    prompts: Sequence[AnsweredPrompt], arrivals: Sequence[float], *, seed: int = 0
) -> list[dict[str, Any]]:
    """One JSONL record per arrival, each with a prompt drawn uniformly (with replacement)."""
    if not prompts:
        raise ValueError("no prompts to draw from")
    pick = np.random.default_rng([seed, 27]).integers(len(prompts), size=len(arrivals))
    return [
        {
            "arrival_s": round(float(at), 6),
            "messages": list(prompts[k].messages),
            "output_tokens": prompts[k].output_tokens,
            "tier": prompts[k].tier,
            "prompt_id": prompts[k].prompt_id,
        }
        for at, k in zip(arrivals, pick, strict=True)
    ]


def write_jsonl(records: Sequence[dict[str, Any]], path: Path | str) -> Path:
    """Write the records one per line (atomically: a reader sees the whole file or none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
