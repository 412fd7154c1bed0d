"""Training pieces on synthetic data, and the shared-data loader when the data is present."""

from __future__ import annotations

import numpy as np
import pytest
from predict_helpers import synthetic_examples

from orchestrator.paths import SHARED_DATA
from orchestrator.predict import Predictor
from orchestrator.predict.lexical import fit_ridge, score
from orchestrator.predict.offline.data import SOURCES, data_available, load_examples
from orchestrator.predict.offline.train import TrainConfig, fixed_effects, train
from orchestrator.predict.store import TrafficRecord


def test_fixed_effects_recover_model_factors():
    rng = np.random.default_rng(0)
    prompts = rng.normal(5, 1, size=200)
    true = {"terse": -0.7, "plain": 0.0, "verbose": 0.7}
    rows_req, rows_model, y = [], [], []
    for r, a in enumerate(prompts):
        for name, b in true.items():
            rows_req.append(r)
            rows_model.append(name)
            y.append(a + b + rng.normal(0, 0.1))
    rows_req.append(999)
    rows_model.append("alone")  # answers no shared prompt: not identified
    y.append(9.0)
    got = fixed_effects(
        np.array(y), np.array(rows_req), np.array(rows_model), set(true), {"alone": 0.25}
    )
    for name, b in true.items():
        assert got[name] == pytest.approx(b, abs=0.03)
    assert got["alone"] == 0.25


def test_lexical_ridge_learns_word_effects():
    long_word, short_word = 7, 9
    sets = [np.array([long_word, 1, 2]), np.array([short_word, 1, 3])] * 50
    target = np.array([6.0, 2.0] * 50)
    w, b = fit_ridge(sets, target, vocab_size=16, damp=0.1)
    assert score(np.array([long_word, 1]), w, b) > score(np.array([short_word, 1]), w, b) + 2


def test_train_on_synthetic_data_with_traffic(tmp_path):
    examples = synthetic_examples()
    probe = Predictor(store=None)
    feat = probe.predict({"messages": [{"role": "user", "content": "Write an essay."}]}).features
    traffic = [
        TrafficRecord(
            profile="smollm2-cpu",
            feature_schema=probe.feature_schema,
            features=np.asarray(feat.vector, dtype=np.float32),
            lexical_ids=np.asarray(feat.lexical_ids, dtype=np.int32),
            phrase_ids=np.asarray(feat.phrase_ids, dtype=np.int32),
            prompt_tokens=feat.default_prompt_tokens,
            predicted_p50=10,
            predicted_p90=20,
            output_tokens=500,
            reasoning_tokens=0,
        )
    ] * 5
    # a few hundred rows: leaves of 200 rows (the default, for 14k rows) could not split
    cfg = TrainConfig(rounds=30, folds=3, threads=1, test_percent=25, min_data_in_leaf=10)
    result = train(
        cfg, examples, traffic=traffic, traffic_offsets={"smollm2-cpu": 0.1}, evaluate_heldout=False
    )
    meta = result.artifact.meta
    assert meta.known_models["m-long"].log_offset > meta.known_models["m-short"].log_offset + 0.8
    assert "traffic" in meta.training["train_rows_by_source"]
    assert result.heldout and all(line.profile in {"m-short", "m-long"} for line in result.heldout)
    result.artifact.save(tmp_path / "art")
    refit = Predictor(tmp_path / "art", store=None)
    essay = refit.predict(
        {"messages": [{"role": "user", "content": "Write a detailed essay about lakes."}]}
    )
    yes = refit.predict({"messages": [{"role": "user", "content": "Is 5 odd? Yes or no."}]})
    assert essay.p50_tokens > yes.p50_tokens


@pytest.mark.skipif(not data_available(SHARED_DATA), reason=f"shared data absent: {SHARED_DATA}")
def test_shared_data_loads_with_prompt_groups():
    examples = load_examples(SHARED_DATA)
    sources = {e.source for e in examples}
    assert sources == set(SOURCES)
    v01 = [e for e in examples if e.source == "arena_hard_v01"]
    assert len(v01) == 1500 and len({e.model for e in v01}) == 3 and all(e.answer for e in v01)
    alpaca_groups = {e.group for e in examples if e.source == "alpaca_eval"}
    assert len(alpaca_groups) == 805
    two_turn = [e for e in examples if len(e.messages) == 3]
    assert two_turn and all(e.messages[1][0] == "assistant" and e.answer for e in two_turn)
    assert "gpt-4-1106-preview" in {e.model for e in examples if e.source == "alpaca_eval"}


def test_a_left_out_source_leaves_nothing_in_the_table():
    from orchestrator.predict.offline.table import featurize_examples

    table = featurize_examples(synthetic_examples(sources=("alpaca_eval", "gsm8k"), prompts=8))
    kept = table.without_sources(["gsm8k"])
    assert set(kept.row_source) == {"alpaca_eval"}
    assert kept.groups == [g for g in table.groups if int(g.split(":")[1]) % 2 == 0]
    assert len(kept.requests) == len(kept.lexical_ids) == len(kept.vectors) == 4
    # every row still points at its own request, answered by the same text and length
    for i in range(len(kept.row_request)):
        body = kept.requests[kept.row_request[i]]
        assert "essay" in body["messages"][0]["content"]
    assert sorted(kept.row_tokens) == sorted(table.row_tokens[table.row_source == "alpaca_eval"])


@pytest.mark.skipif(not data_available(SHARED_DATA), reason=f"shared data absent: {SHARED_DATA}")
def test_examples_of_chosen_sources_only():
    examples = load_examples(SHARED_DATA, sources=["arena_hard"])
    assert {e.source for e in examples} == {"arena_hard"} and len(examples) == 750
    with pytest.raises(ValueError, match="unknown source"):
        load_examples(SHARED_DATA, sources=["sharegpt"])
