"""The traffic of real prompts with their real answer lengths (`simulate/answered.py`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrator.paths import SHARED_DATA
from orchestrator.predict.offline.data import data_available
from orchestrator.simulate.answered import (
    AnsweredPrompt,
    answered_prompts,
    azure_arrivals,
    build_trace,
    write_jsonl,
)
from orchestrator.simulate.traffic import load_traffic

needs_data = pytest.mark.skipif(
    not data_available(SHARED_DATA), reason=f"shared data absent: {SHARED_DATA}"
)

PROMPTS = [
    AnsweredPrompt("t:0", ({"role": "user", "content": "Say hi."},), 3, "medium"),
    AnsweredPrompt("t:1", ({"role": "user", "content": "Write an essay."},), 900, "large"),
    AnsweredPrompt("t:2", ({"role": "user", "content": "Prove it."},), 250, "frontier"),
]


def _azure_csv(path, seconds):
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    lines += [f"2023-11-16 18:15:{s:09.6f}0,100,20" for s in seconds]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_arrival_gets_a_prompt_with_its_answer_length(tmp_path):
    arrivals = np.arange(200) * 0.1
    records = build_trace(PROMPTS, arrivals, seed=3)
    assert [r["arrival_s"] for r in records] == pytest.approx(arrivals)
    by_id = {p.prompt_id: p for p in PROMPTS}
    for r in records:
        p = by_id[r["prompt_id"]]
        assert (r["output_tokens"], r["tier"], r["messages"]) == (
            p.output_tokens,
            p.tier,
            list(p.messages),
        )
    assert {r["prompt_id"] for r in records} == set(by_id)  # all drawn in 200 arrivals
    assert build_trace(PROMPTS, arrivals, seed=3) == records
    assert build_trace(PROMPTS, arrivals, seed=4) != records


def test_the_simulator_reads_the_written_trace(tmp_path):
    records = build_trace(PROMPTS, np.arange(30) * 0.5, seed=0)
    path = write_jsonl(records, tmp_path / "trace.jsonl")
    requests = load_traffic(path)
    assert [r.output_tokens for r in requests] == [r["output_tokens"] for r in records]
    assert [r.tier for r in requests] == [r["tier"] for r in records]
    # equal bodies share one key, so the predictor featurizes each prompt once
    keys = {}
    for req, rec in zip(requests, records, strict=True):
        keys.setdefault(rec["prompt_id"], set()).add(req.body_key)
    assert all(len(k) == 1 for k in keys.values())
    assert len({next(iter(k)) for k in keys.values()}) == len(keys)


def test_arrivals_are_cut_then_rate_scaled(tmp_path):
    csv_path = _azure_csv(tmp_path / "azure.csv", [1.0, 2.0, 3.5, 7.0, 30.0])
    assert azure_arrivals(csv_path).tolist() == pytest.approx([0.0, 1.0, 2.5, 6.0, 29.0])
    cut = azure_arrivals(csv_path, duration_s=10)
    assert cut.tolist() == pytest.approx([0.0, 1.0, 2.5, 6.0])
    x3 = azure_arrivals(csv_path, duration_s=10, rate_scale=3, seed=1)
    assert len(x3) == 12 and np.all(np.diff(x3) >= 0)
    assert set(cut.tolist()) <= set(x3.tolist())  # every original arrival kept at its time


def test_empty_prompt_list_is_an_error():
    with pytest.raises(ValueError, match="no prompts"):
        build_trace([], [0.0])


@needs_data
def test_real_source_carries_its_answers_lengths_and_tiers():
    prompts = answered_prompts("arena_hard")
    assert len(prompts) == 750
    assert {p.tier for p in prompts} == {"frontier", "large"}
    # o3-mini's own count (metadata.token_len) and ours (the default tokenizer) agree in order
    theirs = {}
    with (SHARED_DATA / "arena-hard-v2" / "answer_o3-mini-2025-01-31.jsonl").open() as fh:
        for line in fh:
            a = json.loads(line)
            theirs[f"arena:{a['uid']}"] = a["metadata"]["token_len"]
    ours = np.array([p.output_tokens for p in prompts], dtype=float)
    ref = np.array([theirs[p.prompt_id] for p in prompts], dtype=float)
    assert np.corrcoef(np.log(ours), np.log(ref))[0, 1] > 0.95


@needs_data
def test_a_source_with_many_models_needs_a_known_one():
    with pytest.raises(ValueError, match="choose the answering model"):
        answered_prompts("alpaca_eval", model="no-such-model")
    lengths = {p.output_tokens for p in answered_prompts("alpaca_eval", model="phi-2")}
    assert lengths != {p.output_tokens for p in answered_prompts("alpaca_eval")}
