"""Per-profile calibration: moves toward observed lengths, keeps p90 coverage, persists."""

from __future__ import annotations

import math

import pytest
from predict_helpers import chat

from orchestrator.predict import Predictor
from orchestrator.predict.calibration import CalibrationConfig, ProfileCalibration, observe
from orchestrator.predict.store import PredictorStore

CFG = CalibrationConfig()


def test_offset_moves_toward_observed_lengths():
    cal = ProfileCalibration()
    base = math.log1p(100)
    for _ in range(50):
        cal = observe(cal, base, base + 0.8, 300, 0, CFG)  # the profile answers 3x longer
    offset = cal.log_offset(CFG)
    assert 0.5 * math.log(3) < offset < math.log(3) + 1e-9
    for _ in range(500):
        cal = observe(cal, base, base + 0.8, 300, 0, CFG)
    assert cal.log_offset(CFG) == pytest.approx(math.log(301 / 101), abs=0.05)


def test_prior_dominates_until_data_arrives():
    cal = ProfileCalibration(prior_offset=-0.5)
    assert cal.log_offset(CFG) == pytest.approx(-0.5)
    cal = observe(cal, 3.0, 4.0, int(math.expm1(3.5)), 0, CFG)
    assert -0.5 < cal.log_offset(CFG) < 0.5


def test_p90_shift_tracks_misses_toward_ten_percent():
    cal = ProfileCalibration()
    base = math.log1p(100)
    # actual lengths are far above the p90: the shift must grow until misses are rare
    for _ in range(400):
        cal = observe(cal, base, base + 0.1, 100 if _ % 2 else 2000, 0, CFG)
    offset = cal.log_offset(CFG)
    assert base + 0.1 + offset + cal.p90_shift >= math.log1p(1500)


def test_reasoning_ratio_learns_only_from_thinking_requests():
    cal = ProfileCalibration(prior_reasoning_log_ratio=math.log(2.0))
    base = math.log1p(100)
    same = observe(cal, base, base + 1, 100, 0, CFG)
    assert same.reasoning_log_ratio(CFG) == pytest.approx(math.log(2.0))
    for _ in range(200):
        cal = observe(cal, base, base + 1, 100, 1000, CFG)
    assert cal.reasoning_log_ratio(CFG) > math.log(5.0)


def test_observe_updates_prediction_and_persists_across_reload(artifact, store_path):
    body = chat("Describe your favourite city in a few sentences.")
    store = PredictorStore(store_path)
    first = Predictor(artifact, store=store)
    before = first.predict(body, calibration="verbose-profile")
    for _ in range(60):
        first.observe("verbose-profile", before, before.p50_tokens * 4)
    after = first.predict(body, calibration="verbose-profile")
    assert after.p50_tokens > 2 * before.p50_tokens
    assert store.count_records() == 60
    store.close()

    reopened = PredictorStore(store_path)
    second = Predictor(artifact, store=reopened)
    again = second.predict(body, calibration="verbose-profile")
    assert again.p50_tokens == after.p50_tokens
    assert second.predict(body, calibration="other-profile").p50_tokens == before.p50_tokens
    record = next(reopened.iter_records())
    assert record.profile == "verbose-profile" and record.output_tokens == before.p50_tokens * 4
    assert len(record.features) == len(before.features.vector)
    reopened.close()


def test_observe_accepts_features_or_request_and_rejects_bad_counts(predictor):
    body = chat("Name three primary colours.")
    pred = predictor.predict(body)
    predictor.observe("p", pred.features, 10)
    predictor.observe("p", body, 10)
    assert predictor.calibration_for("p").observations == 2
    with pytest.raises(ValueError):
        predictor.observe("p", pred, -1)
    with pytest.raises(ValueError):
        predictor.observe("p", pred, 10, reasoning_tokens=-5)
    with pytest.raises(ValueError):
        predictor.observe("p", pred.model_copy(update={"features": None}), 10)


def test_multi_choice_observation_is_per_choice(predictor):
    body = chat("Name three primary colours.", n=4)
    pred = predictor.predict(body)
    predictor.observe("q", pred, 400)  # 100 tokens per choice
    cal = predictor.calibration_for("q")
    expected = math.log1p(100) - pred.features.base_log_p50
    assert cal.residual_sum == pytest.approx(expected)
