"""Learning takes effect in one step: `learn` without `--profile` moves what `predict` without a
profile returns (and every profile without a calibration of its own), the p90 is recalibrated
on the learned lines, `learn --refit` refits in the same command, and a predictor that
follows the active artifact picks up a refit without a restart."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from predict_helpers import chat
from scipy.stats import kendalltau

from orchestrator.cli import main
from orchestrator.paths import SHARED_DATA
from orchestrator.predict import Predictor
from orchestrator.predict.artifact import (
    DEFAULT_ARTIFACT_DIR,
    load_artifact,
    traffic_artifact_dir,
)
from orchestrator.predict.calibration import (
    CalibrationConfig,
    ProfileCalibration,
    conformal_quantile,
    recalibrate_p90,
)
from orchestrator.predict.offline.data import data_available
from orchestrator.predict.offline.learn import learn_file
from orchestrator.predict.store import PredictorStore

PROBES = [
    "What is the capital of France?",
    "Write a 1,000-word story about a lighthouse keeper.",
    "Explain how a refrigerator works.",
    "Translate 'good morning' into Spanish.",
    "Is 17 a prime number? Answer yes or no.",
    "Write a Python function that parses a CSV file and sums a column.",
]


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _predict_cli(tmp_path, bodies, name="out.jsonl", *extra) -> list[dict]:
    src = tmp_path / "bodies.jsonl"
    _write(src, bodies)
    out = tmp_path / name
    assert main(["predict", "--input", str(src), "--output", str(out), *extra]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_learn_without_profile_moves_predict_without_profile(tmp_path, capsys):
    bodies = [chat(p) for p in PROBES]
    before = _predict_cli(tmp_path, bodies, "before.jsonl")
    labelled = tmp_path / "labelled.jsonl"
    _write(
        labelled,
        [
            {"request": chat(f"{p} (variant {i})"), "output_tokens": 2000}
            for i in range(10)
            for p in PROBES
        ],
    )
    assert main(["predictor", "learn", "--data", str(labelled)]) == 0
    out = capsys.readouterr().out
    assert "default: 60 lines" in out and "name no profile" in out
    after = _predict_cli(tmp_path, bodies, "after.jsonl")
    for b, a in zip(before, after, strict=True):
        assert a["p50_tokens"] > 2 * b["p50_tokens"]  # labels ~2,000 tokens: learned at once
        assert a["p90_tokens"] >= a["p50_tokens"]


def test_profile_without_calibration_starts_from_learned_default(tmp_path, stored_predictor):
    probe = chat("Tell me about rivers.")
    fresh = stored_predictor.predict(probe, calibration="some-profile").p50_tokens
    labelled = tmp_path / "labelled.jsonl"
    _write(
        labelled,
        [{"request": chat(f"Tell me about city {i}."), "output_tokens": 1500} for i in range(30)],
    )
    learn_file(stored_predictor, labelled)
    learned = stored_predictor.predict(probe).p50_tokens
    assert learned > 2 * fresh
    assert stored_predictor.predict(probe, calibration="some-profile").p50_tokens == learned
    # a profile with a calibration of its own keeps it
    _write(
        labelled,
        [
            {"request": chat(f"Tell me about town {i}."), "output_tokens": 5, "profile": "terse"}
            for i in range(30)
        ],
    )
    learn_file(stored_predictor, labelled)
    assert stored_predictor.predict(probe, calibration="terse").p50_tokens < fresh


def test_conformal_quantile_is_the_finite_sample_rank():
    values = list(range(1, 20))  # n = 19: rank ceil(20 * 0.9) = 18
    assert conformal_quantile(values, 0.9) == 18
    assert conformal_quantile([3.0], 0.9) == 3.0
    with pytest.raises(ValueError):
        conformal_quantile([], 0.9)


def test_recalibrate_p90_covers_held_out_lines_of_the_same_workload():
    """Labels whose spread is far wider than the model's: after recalibration on 400 of them,
    ~90% of 4,000 more from the same workload fall at or below p90 (the adaptive steps alone
    are still far from it after 400)."""
    cfg = CalibrationConfig()
    rng = np.random.default_rng(5)
    base50 = rng.uniform(2.0, 6.0, size=4400)
    base90 = base50 + 0.3
    actual = np.expm1(base50 + 0.7 + rng.normal(0.0, 1.2, size=4400)).astype(int)
    cal = ProfileCalibration(residual_sum=0.7 * 400, weight=400.0, observations=400)
    tuned = recalibrate_p90(cal, base90[:400].tolist(), actual[:400].tolist(), cfg)
    p90 = base90[400:] + tuned.log_offset(cfg) + tuned.p90_shift
    coverage = float(np.mean(np.log1p(actual[400:]) <= p90))
    assert 0.87 <= coverage <= 0.93
    # too few lines: left as it was
    assert recalibrate_p90(cal, [3.0] * 5, [10] * 5, cfg) == cal


def test_learn_sets_p90_from_its_lines(tmp_path, stored_predictor):
    rng = np.random.default_rng(2)
    rows = [
        {"request": chat(f"Describe place number {i}."), "output_tokens": int(v)}
        for i, v in enumerate(np.expm1(rng.normal(6.0, 0.8, size=200)))
    ]
    labelled = tmp_path / "labelled.jsonl"
    _write(labelled, rows)
    report = learn_file(stored_predictor, labelled, "tenant")
    cfg = stored_predictor.calibration_config
    hits = []
    for row in rows:
        pred = stored_predictor.predict(row["request"], calibration="tenant")
        hits.append(row["output_tokens"] <= pred.p90_tokens)
    assert 0.88 <= float(np.mean(hits)) <= 0.95  # in-sample: the conformal rank, not ACI's drift
    assert report.after["tenant"].p90_shift != report.before["tenant"].p90_shift
    assert math.isfinite(report.after["tenant"].log_offset(cfg))


def test_following_predictor_reloads_a_refit_without_restart(tmp_path):
    store = PredictorStore(tmp_path / "p.sqlite")
    predictor = Predictor(store=store, refresh_seconds=0.0)
    probe = chat("Explain photosynthesis.")
    shipped = predictor.predict(probe).p50_tokens
    assert predictor.reload_artifact() is False  # nothing new
    refit = load_artifact(DEFAULT_ARTIFACT_DIR)
    refit.meta = refit.meta.model_copy(update={"p50_shift": refit.meta.p50_shift + 1.0})
    refit.save(traffic_artifact_dir())
    reloaded = predictor.predict(probe).p50_tokens  # the next refresh loads it
    assert reloaded > 2 * shipped
    assert predictor.reload_artifact() is False
    # a predictor given an explicit artifact never follows
    pinned = Predictor(DEFAULT_ARTIFACT_DIR, store=None, refresh_seconds=0.0)
    assert pinned.reload_artifact() is False
    assert pinned.predict(probe).p50_tokens == shipped
    store.close()


@pytest.mark.skipif(not data_available(SHARED_DATA), reason=f"shared data absent: {SHARED_DATA}")
def test_learn_refit_then_predict_changes_the_ranking(tmp_path, capsys):
    """Labels that reverse the model's ranking of the probes: `learn --refit` refits in the
    same command (with progress), and `predict` then ranks the probes closer to the labels."""
    bodies = [chat(p) for p in PROBES]
    before = [line["p50_tokens"] for line in _predict_cli(tmp_path, bodies, "before.jsonl")]
    order = np.argsort(np.argsort(before))  # rank of each probe, 0 = shortest
    labels = [int(40 * 2 ** (len(PROBES) - 1 - r)) for r in order]  # reversed ranking
    labelled = tmp_path / "labelled.jsonl"
    _write(
        labelled,
        [
            {"request": b, "output_tokens": t}
            for _ in range(40)
            for b, t in zip(bodies, labels, strict=True)
        ],
    )
    assert main(["predictor", "learn", "--data", str(labelled), "--refit"]) == 0
    captured = capsys.readouterr()
    assert "refit from 240 traffic records" in captured.out
    assert "quantile boosters" in captured.err  # progress lines
    after = [line["p50_tokens"] for line in _predict_cli(tmp_path, bodies, "after.jsonl")]
    assert kendalltau(after, labels).statistic > kendalltau(before, labels).statistic
