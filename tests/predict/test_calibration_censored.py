"""Answers cut at their cap are censored lengths: calibration learns them only as lower
bounds, so clients that ask for short caps do not shorten every other request's prediction."""

from __future__ import annotations

import math

from predict_helpers import chat

from orchestrator.predict import Predictor
from orchestrator.predict.calibration import (
    CalibrationConfig,
    ProfileCalibration,
    observe,
    was_cut,
)
from orchestrator.predict.store import PredictorStore

CFG = CalibrationConfig()
BASE = math.log1p(100)  # the model predicts 100 tokens


def _feed(cal: ProfileCalibration, tokens: int, cut: bool, times: int = 200):
    for _ in range(times):
        cal = observe(cal, BASE, BASE + 0.8, tokens, 0, CFG, cut)
    return cal


def test_was_cut_reads_the_cap_per_choice():
    assert was_cut(16, 16) and was_cut(17, 16)
    assert not was_cut(15, 16) and not was_cut(10_000, None)


def test_short_cut_answers_leave_the_calibration_alone():
    start = ProfileCalibration()
    # clients capping at 8 tokens: learned as full lengths they would drag p50 to ~8 ...
    uncensored = _feed(start, 8, cut=False)
    assert uncensored.log_offset(CFG) < math.log(9 / 101) + 0.3
    # ... censored, they say only "at least 8" of a request predicted at 100: nothing learned
    assert _feed(start, 8, cut=True) == start


def test_a_cut_answer_above_the_prediction_is_a_lower_bound_that_raises_it():
    start = ProfileCalibration()
    raised = _feed(start, 300, cut=True, times=50)
    assert raised.log_offset(CFG) > 0.5 * math.log(3)
    # a lower bound never raises it past what the same lengths uncut would
    assert raised.log_offset(CFG) <= _feed(start, 300, cut=False, times=50).log_offset(CFG)


def test_a_cut_answer_moves_the_p90_shift_only_when_it_is_a_certain_miss():
    start = ProfileCalibration()
    between = 150  # above p50 (100), below p90 (~225): coverage unknown
    assert _feed(start, between, cut=True, times=1).p90_shift == start.p90_shift
    assert _feed(start, between, cut=False, times=1).p90_shift < start.p90_shift  # a hit
    assert _feed(start, 2000, cut=True, times=1).p90_shift > start.p90_shift  # a miss


def test_thinking_tokens_of_a_cut_answer_teach_nothing():
    start = ProfileCalibration()
    cut = observe(start, BASE, BASE + 0.8, 300, 5000, CFG, cut=True)
    assert cut.reasoning_weight == 0
    assert observe(start, BASE, BASE + 0.8, 300, 5000, CFG).reasoning_weight == 1


STORY = chat("Tell me a long story about a dragon and a knight.")


def test_predictor_skips_short_cut_answers_and_their_traffic_rows(artifact, tmp_path):
    predictor = Predictor(artifact, store=PredictorStore(tmp_path / "s.sqlite"))
    before = predictor.predict(STORY, calibration="p")
    capped = predictor.predict({**STORY, "max_tokens": 8}, calibration="p")
    assert capped.max_tokens == 8 and before.p50_tokens > 8
    for _ in range(100):  # every answer stopped at the client's cap of 8
        predictor.observe("p", capped, 8)
    assert predictor.predict(STORY, calibration="p").p50_tokens == before.p50_tokens
    assert predictor.store.count_records() == 0
    # the same lengths under a cap they did not reach are full lengths: learned
    uncapped = predictor.predict({**STORY, "max_tokens": 4096}, calibration="p")
    for _ in range(100):
        predictor.observe("p", uncapped, 8)
    assert predictor.predict(STORY, calibration="p").p50_tokens < before.p50_tokens
    assert predictor.store.count_records() == 100


def test_a_cap_lowered_by_the_router_counts_too(artifact, tmp_path):
    predictor = Predictor(artifact, store=PredictorStore(tmp_path / "s.sqlite"))
    pred = predictor.predict(STORY, calibration="p")
    for _ in range(100):  # the decision capped it at 5 tokens (e.g. a spend cap)
        predictor.observe("p", pred, 5, max_tokens=5)
    assert predictor.store.count_records() == 0
    assert predictor.predict(STORY, calibration="p").p50_tokens == pred.p50_tokens
