"""One-row booster predictions (`SingleRowPredictor`) equal `Booster.predict`."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from orchestrator.predict.single_row import SingleRowPredictor


def _rows(n: int, columns: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = rng.choice([0.01, 1.0, 100.0], size=(n, 1))
    return (rng.normal(size=(n, columns)) * scale).astype(np.float32)


@pytest.mark.parametrize("objective", ["quantile", "regression", "binary"])
def test_single_row_equals_booster_predict(objective):
    x = _rows(400, 6, 0)
    y = (x[:, 0] > 0).astype(float) if objective == "binary" else x[:, 0] * 3 + x[:, 1] ** 2
    booster = lgb.train(
        {"objective": objective, "verbose": -1, "num_leaves": 7, "num_threads": 1},
        lgb.Dataset(x, y),
        num_boost_round=20,
    )
    one = SingleRowPredictor(booster)
    for row in _rows(50, 6, 1):
        row = row.reshape(1, -1)
        assert one(row) == float(booster.predict(row, num_threads=1)[0])


def test_artifact_boosters_agree_on_rows_of_every_scale(artifact):
    for name in ("p50", "p90", "reasoning"):  # the ones the request path reads
        booster = artifact.boosters[name]
        one = SingleRowPredictor(booster)
        for row in _rows(100, one.columns, 2):
            row = row.reshape(1, -1)
            assert one(row) == float(booster.predict(row, num_threads=1)[0])


def test_a_booster_with_several_outputs_is_refused(artifact):
    with pytest.raises(ValueError, match="one output"):
        SingleRowPredictor(artifact.boosters["buckets"])


def test_a_row_of_the_wrong_shape_or_type_is_refused():
    x = _rows(100, 3, 0)
    booster = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(x, x[:, 0]), 5)
    one = SingleRowPredictor(booster)
    with pytest.raises(ValueError, match="float32 row of 3"):
        one(np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        one(np.zeros((1, 3), dtype=np.float64))
