"""`predictor learn`: labelled lines move the next prediction, all or nothing, with line
numbers for bad lines; a refit from the learned traffic is byte-reproducible."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from predict_helpers import chat, synthetic_examples

from orchestrator.cli import main
from orchestrator.predict import Predictor
from orchestrator.predict.calibration import CalibrationConfig, ProfileCalibration, observe
from orchestrator.predict.offline.learn import LearnInputError, learn_file, replay_calibrations
from orchestrator.predict.offline.train import TrainConfig, train
from orchestrator.predict.store import PredictorStore

ASKS = [f"Tell me about the history of city number {i}." for i in range(40)]


def _write(path, rows) -> None:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def test_learn_moves_next_prediction_toward_labels(tmp_path, stored_predictor):
    probe = chat("Tell me about the history of Rome.")
    before = stored_predictor.predict(probe, calibration="tenant").p50_tokens
    labelled = tmp_path / "labelled.jsonl"
    _write(labelled, [{"request": chat(a), "output_tokens": 8 * before} for a in ASKS])
    report = learn_file(stored_predictor, labelled, "tenant")
    assert report.lines == 40 and report.profiles == {"tenant": 40}
    after = stored_predictor.predict(probe, calibration="tenant").p50_tokens
    assert after > 2 * before  # the labels say 8x: the very next prediction moves up
    # the traffic store holds the lines (for --from-traffic), and a fresh process sees them
    assert stored_predictor.store.count_records() == 40
    fresh = Predictor(stored_predictor.artifact, store=PredictorStore(stored_predictor.store.path))
    assert fresh.predict(probe, calibration="tenant").p50_tokens == after
    # shorter labels pull it the other way
    _write(labelled, [{"request": chat(a), "output_tokens": 1} for a in ASKS * 3])
    learn_file(stored_predictor, labelled, "tenant")
    assert stored_predictor.predict(probe, calibration="tenant").p50_tokens < after


def test_learn_rejects_bad_lines_with_numbers_and_writes_nothing(tmp_path, stored_predictor):
    good = {"request": chat("hi"), "output_tokens": 5}
    rows = [
        good,
        {"request": chat("hi"), "output_tokens": -1},
        good,
        {"request": "not a body", "output_tokens": 3},
        {"request": {"messages": []}, "output_tokens": 3},
        "{not json",
        {"request": chat("hi"), "output_tokens": 4, "profile": 7},
    ]
    path = tmp_path / "bad.jsonl"
    _write(path, rows)
    with pytest.raises(LearnInputError) as err:
        learn_file(stored_predictor, path, "tenant")
    lines = [e.split(":")[0] for e in err.value.errors]
    assert lines == ["line 2", "line 4", "line 5", "line 6", "line 7"]
    assert "output_tokens" in err.value.errors[0] and "messages" in err.value.errors[2]
    store = stored_predictor.store
    assert store.count_records() == 0 and store.load_calibrations() == {}


def test_learn_is_one_transaction(tmp_path, stored_predictor, monkeypatch):
    path = tmp_path / "ok.jsonl"
    _write(path, [{"request": chat(a), "output_tokens": 50} for a in ASKS[:5]])
    calls = {"n": 0}
    real = observe

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr("orchestrator.predict.calibration_book.observe", failing)
    with pytest.raises(RuntimeError):
        learn_file(stored_predictor, path, "tenant")
    store = stored_predictor.store
    assert store.count_records() == 0 and store.load_calibrations() == {}


def test_learn_cli_reports_and_rejects(tmp_path, capsys):
    path = tmp_path / "labelled.jsonl"
    _write(path, [{"request": chat(a), "output_tokens": 300} for a in ASKS[:3]])
    assert main(["predictor", "learn", "--data", str(path), "--profile", "tenant"]) == 0
    out = capsys.readouterr().out
    assert "learned 3 labelled requests" in out and "tenant: 3 lines" in out
    _write(path, [{"request": chat("x"), "output_tokens": "many"}])
    assert main(["predictor", "learn", "--data", str(path)]) == 2
    assert "line 1: output_tokens" in capsys.readouterr().err


def test_conformal_update_moves_coverage_toward_90_on_shifted_stream():
    """A workload whose answers run ~4x the model's p90: adaptive conformal updates bring
    coverage from near 0 back to ~90%."""
    cfg = CalibrationConfig()
    rng = np.random.default_rng(3)
    base50, base90 = math.log1p(100), math.log1p(200)
    actual = np.expm1(rng.normal(math.log(800), 0.6, size=1500)).astype(int)
    static_cov = float(np.mean(np.log1p(actual) <= base90))
    cal = ProfileCalibration()
    hits = []
    for a in actual:
        p90 = base90 + cal.log_offset(cfg) + cal.p90_shift
        hits.append(math.log1p(a) <= p90)
        cal = observe(cal, base50, base90, int(a), 0, cfg)
    late = float(np.mean(hits[500:]))
    assert static_cov < 0.2
    assert abs(late - 0.9) < 0.03
    assert float(np.mean(hits[:100])) > static_cov  # it moves within the first hundred


def _traffic_store(tmp_path, predictor_artifact):
    store = PredictorStore(tmp_path / "t.sqlite")
    pred = Predictor(predictor_artifact, store=store)
    path = tmp_path / "labelled.jsonl"
    _write(path, [{"request": chat(a), "output_tokens": 40 + 3 * i} for i, a in enumerate(ASKS)])
    learn_file(pred, path, "tenant")
    return store, pred


def test_refit_after_learn_is_byte_identical(tmp_path, artifact):
    store, pred = _traffic_store(tmp_path, artifact)
    records = list(store.iter_records())
    assert len(records) == len(ASKS)
    cfg = TrainConfig(rounds=10, folds=2, threads=1, min_data_in_leaf=10, all_data=True)
    examples = synthetic_examples(("alpaca_eval", "gsm8k"), prompts=40)
    digests = []
    for k in range(2):
        result = train(cfg, examples, traffic=records, evaluate_heldout=False)
        out = tmp_path / f"art{k}"
        result.artifact.save(out)
        digests.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert digests[0].keys() == digests[1].keys() and digests[0] == digests[1]
    assert result.artifact.meta.training["train_rows_by_source"]["traffic"] == len(ASKS)
    # the calibrations are replayed against the refit
    refit = Predictor(tmp_path / "art0", store=store)
    assert replay_calibrations(refit, store) == {"tenant": len(ASKS)}
    assert store.load_calibrations()["tenant"].observations == len(ASKS)
