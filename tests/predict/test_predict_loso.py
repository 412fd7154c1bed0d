"""Leave-one-source-out evaluation and the out-of-source fit, on small synthetic tables."""

from __future__ import annotations

import numpy as np
import pytest
from predict_helpers import synthetic_examples

from orchestrator.predict.offline.boosters import weighted_quantile
from orchestrator.predict.offline.fit import TrainConfig, fit_core, request_folds
from orchestrator.predict.offline.loso import METHODS, LosoConfig, format_loso, loso
from orchestrator.predict.offline.table import featurize_examples

CFG = TrainConfig(rounds=10, threads=1, min_data_in_leaf=10, conformal_classes=2)
SOURCES = ("alpaca_eval", "gsm8k", "mt_bench")


@pytest.fixture(scope="module")
def table():
    return featurize_examples(synthetic_examples(SOURCES, prompts=60))


def test_stacking_folds_are_the_training_sources(table):
    tr = table.row_source != "mt_bench"
    folds = request_folds(table, tr, CFG)
    src = table.request_source
    assert set(folds[src == "mt_bench"]) == {-1}
    assert folds[src == "alpaca_eval"].min() == folds[src == "alpaca_eval"].max() >= 0
    assert folds[src == "alpaca_eval"][0] != folds[src == "gsm8k"][0]


def test_weighted_quantile_matches_repeated_values():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    assert weighted_quantile(values, 0.5, np.array([1, 1, 1, 5])) == 4.0
    assert weighted_quantile(values, 0.5) == pytest.approx(2.5)


def test_fit_core_ranks_a_left_out_source(table):
    tr = table.row_source != "mt_bench"
    fitted = fit_core(table, tr, CFG)
    assert len(fitted.class_shifts) == len(fitted.class_edges) + 1 == 2
    held = np.where(~tr)[0]
    q50, q90 = fitted.predict_requests(table.row_request[held])
    assert np.all(q90 >= q50)
    assert np.corrcoef(q50, table.row_y[held])[0, 1] > 0.5


def test_loso_reports_every_source_and_method_with_a_curve(table):
    cfg = LosoConfig(train=CFG, curve=(0, 20))
    lines: list[str] = []
    result = loso(table, cfg, progress=lines.append)
    assert set(result["sources"]) == set(SOURCES) and len(lines) == 3
    for entry in result["sources"].values():
        assert set(entry["offline"]) == set(METHODS)
        assert entry["offline"]["model"]["kendall_tau"] > 0.3
        points = entry["curve"]["points"]
        assert [p["requested"] for p in points] == [0, 20] and "refit" in points[1]
    assert result["mean"]["offline"]["model"]["kendall_tau"] > 0.3
    text = format_loso(result)
    assert "mean" in text and "ngram_ridge" in text and "N=20" in text


def test_loso_toward_the_left_out_prompts_weighs_each_fit_differently(table):
    from orchestrator.predict.offline.importance import ImportanceConfig

    plain = loso(table, LosoConfig(train=CFG), progress=lambda line: None)
    cfg = LosoConfig(train=CFG, importance=ImportanceConfig(level="request"))
    weighted = loso(table, cfg, progress=lambda line: None)
    assert repr(cfg) == repr(LosoConfig(train=CFG))  # the cache key names it separately
    for src in SOURCES:
        a = plain["sources"][src]["offline"]["model"]
        b = weighted["sources"][src]["offline"]["model"]
        assert b["kendall_tau"] > 0.3
        assert a != b  # the weights reach the fit
