"""Weighting the training rows toward a deployment's unlabelled prompts (`importance.py`,
`predictor learn --refit --unlabelled`): the weights favour training requests like the
prompts, and a refit with prompts is a different model from one without."""

from __future__ import annotations

import json

import numpy as np
import pytest
from predict_helpers import chat, synthetic_examples

from orchestrator.cli import main
from orchestrator.predict import Predictor
from orchestrator.predict.offline.importance import (
    ImportanceConfig,
    effective_share,
    importance_weights,
)
from orchestrator.predict.offline.learn import LearnInputError, read_unlabelled
from orchestrator.predict.offline.train import TrainConfig, train


def test_weights_favour_training_requests_like_the_target_prompts():
    rng = np.random.default_rng(5)
    x_train = rng.standard_normal((600, 4))
    x_target = rng.standard_normal((200, 4)) + np.array([1.5, 0.0, 0.0, 0.0])
    w = importance_weights(
        x_train, x_target, ImportanceConfig(temper=1.0, clip=10.0, damp=1.0, level="request")
    )
    assert w.mean() == pytest.approx(1.0)
    assert np.corrcoef(w, x_train[:, 0])[0, 1] > 0.5  # toward the target's side
    assert abs(np.corrcoef(w, x_train[:, 1])[0, 1]) < 0.2
    sources = np.where(x_train[:, 0] > 0, "near", "far")  # per source: only the mass moves
    per_source = importance_weights(x_train, x_target, ImportanceConfig(damp=1.0), sources)
    assert len(set(per_source[sources == "near"])) == 1 and per_source.mean() == pytest.approx(1.0)
    assert per_source[sources == "near"][0] > per_source[sources == "far"][0]
    flat = importance_weights(x_train, x_target, ImportanceConfig(temper=0.0))
    assert np.array_equal(flat, np.ones(len(x_train)))
    capped = importance_weights(
        x_train, x_target, ImportanceConfig(temper=3.0, clip=2.0, damp=1.0, level="request")
    )
    assert capped.max() <= 2.0 + 1e-9 and capped.mean() == pytest.approx(1.0)
    assert effective_share(capped) > effective_share(
        importance_weights(
            x_train, x_target, ImportanceConfig(temper=3.0, clip=50.0, damp=1.0, level="request")
        )
    )


def test_refit_with_unlabelled_prompts_is_a_different_model(tmp_path, predictor):
    cfg = TrainConfig(rounds=20, folds=2, threads=1, min_data_in_leaf=10, all_data=True)
    examples = synthetic_examples(("alpaca_eval", "gsm8k"), prompts=60)
    essays = [chat(f"Write a detailed essay number {i} about lakes.") for i in range(30)]
    prompts = [predictor.featurize(body).features for body in essays]
    plain = train(cfg, examples, evaluate_heldout=False)
    weighted = train(cfg, examples, evaluate_heldout=False, unlabelled=prompts)
    meta = weighted.artifact.meta.training["unlabelled_prompts"]
    assert meta["prompts"] == 30 and 0 < meta["effective_share"] < 1
    assert "unlabelled_prompts" not in plain.artifact.meta.training
    probe = chat("Is 7 odd? Yes or no.")
    logs = []
    for name, result in (("plain", plain), ("weighted", weighted)):
        result.artifact.save(tmp_path / name)
        logs.append(Predictor(tmp_path / name, store=None).featurize(probe).features.base_log_p50)
    assert logs[0] != pytest.approx(logs[1], abs=1e-6)


def test_unlabelled_file_takes_bodies_or_learn_lines_and_names_bad_lines(tmp_path, predictor):
    good = tmp_path / "prompts.jsonl"
    lines = [chat("Explain tides."), {"request": chat("List 3 fruits."), "output_tokens": 9}]
    good.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    assert len(read_unlabelled(predictor, good)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\nnot json\n[1]\n', encoding="utf-8")
    with pytest.raises(LearnInputError) as err:
        read_unlabelled(predictor, bad)
    assert [e.split(":")[0] for e in err.value.errors] == ["line 1", "line 2", "line 3"]


def test_learn_unlabelled_needs_refit_and_rejects_a_bad_file(tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps(chat("Explain tides.")) + "\n", encoding="utf-8")
    assert main(["predictor", "learn", "--unlabelled", str(prompts)]) == 2
    assert "add --refit" in capsys.readouterr().err
    prompts.write_text("not json\n", encoding="utf-8")
    assert main(["predictor", "learn", "--refit", "--unlabelled", str(prompts)]) == 2
    err = capsys.readouterr().err  # refused before any refit (or for want of the shared data)
    assert "line 1: " in err or "shared training data" in err


def test_request_scale_multiplies_the_rows_of_each_request():
    from orchestrator.predict.offline.fit import row_weights
    from orchestrator.predict.offline.table import featurize_examples

    table = featurize_examples(synthetic_examples(("alpaca_eval", "gsm8k"), prompts=20))
    tr = np.ones(len(table.row_request), dtype=bool)
    scale = np.ones(len(table.groups))
    scale[0] = 3.0
    plain = row_weights(table, tr, TrainConfig())
    scaled = row_weights(table, tr, TrainConfig(), scale)
    ratio = scaled / plain
    first = table.row_request == 0
    assert ratio[first] == pytest.approx(3.0 * ratio[~first][0])
    assert scaled[tr].mean() == pytest.approx(1.0)
    assert np.allclose(ratio[~first], ratio[~first][0])


def test_tau_by_source_weights_toward_each_left_out_source():
    from orchestrator.predict.offline.table import featurize_examples
    from orchestrator.predict.offline.variants import TRAFFIC_VARIANTS, tau_by_source

    table = featurize_examples(synthetic_examples(("alpaca_eval", "gsm8k", "mt_bench"), 40))
    cfg = TrainConfig(rounds=10, threads=1, min_data_in_leaf=10, conformal_classes=2)
    imp = TRAFFIC_VARIANTS["traffic-source"][1]
    taus = tau_by_source(table, cfg, importance=imp)
    assert set(taus) == {"alpaca_eval", "gsm8k", "mt_bench"} and all(t > 0.3 for t in taus.values())
