"""The source-bagged p50 booster (`offline/bagging.py`): one LightGBM model that is the mean
of boosters each fitted without one training source."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from orchestrator.predict.offline.bagging import merge_mean, source_bagged
from orchestrator.predict.single_row import SingleRowPredictor

PARAMS = {
    "objective": "quantile",
    "alpha": 0.5,
    "num_leaves": 4,
    "min_data_in_leaf": 50,
    "verbose": -1,
    "deterministic": True,
    "num_threads": 1,
}


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1800, 5)).astype(np.float32)
    x[:600, 4] = 0.0  # constant in one source: "none" in that bag's feature ranges
    y = x[:, 0] + np.sin(x[:, 1]) + 0.3 * rng.normal(size=1800)
    sources = np.array(["a", "b", "c", "traffic"])[np.arange(1800) % 4]
    return x, y, sources


def test_merged_booster_predicts_the_mean_of_its_parts() -> None:
    x, y, sources = _data()
    parts = [lgb.train(PARAMS, lgb.Dataset(x[sources != s], y[sources != s]), 20) for s in "abc"]
    merged = merge_mean(parts)
    want = np.mean([p.predict(x) for p in parts], axis=0)
    assert merged.num_trees() == 60
    assert np.allclose(merged.predict(x), want, atol=1e-12)
    # saved and loaded as the artifact is, and through the request path's one-row call
    reloaded = lgb.Booster(model_str=merged.model_to_string())
    assert np.allclose(reloaded.predict(x), want, atol=1e-12)
    row = np.ascontiguousarray(x[:1])
    assert SingleRowPredictor(reloaded)(row) == reloaded.predict(row, num_threads=1)[0]
    # and the parts differ, so the mean is not any one of them
    assert not np.allclose(parts[0].predict(x), parts[1].predict(x))


def test_each_bag_leaves_one_source_out_and_keeps_the_traffic() -> None:
    x, y, sources = _data()
    seen: list[set[str]] = []

    def fit(rows: np.ndarray) -> lgb.Booster:
        seen.append(set(sources[rows]))
        return lgb.train(PARAMS, lgb.Dataset(x[rows], y[rows]), 5)

    assert source_bagged(fit, sources, frozenset({"traffic"})) is not None
    assert seen == [{"b", "c", "traffic"}, {"a", "c", "traffic"}, {"a", "b", "traffic"}]
    two = np.where(sources == "a", "a", "b")
    assert source_bagged(fit, two, frozenset()) is None  # a bag would hold one source


def test_fit_core_with_the_source_bag_ships_one_merged_p50_booster() -> None:
    from dataclasses import replace

    from predict_helpers import synthetic_examples

    from orchestrator.predict.offline.fit import TrainConfig, fit_core
    from orchestrator.predict.offline.table import featurize_examples

    sources = ("alpaca_eval", "arena_hard", "gsm8k", "mt_bench")
    table = featurize_examples(synthetic_examples(sources, 30))
    cfg = TrainConfig(rounds=10, threads=1, min_data_in_leaf=10, conformal_classes=2)
    tr = table.row_source != "mt_bench"  # three training sources: three bags
    plain = fit_core(table, tr, cfg)
    bagged = fit_core(table, tr, replace(cfg, p50_source_bag=True))
    # three boosters' trees in one (a bag on this small data may stop a round or two early)
    assert plain.b50.num_trees() == 10 and 20 < bagged.b50.num_trees() <= 30
    assert bagged.b90.num_trees() == plain.b90.num_trees()  # the p90 booster is not bagged
    reqs = np.unique(table.row_request)
    q_plain, _ = plain.predict_requests(reqs)
    q_bagged, q90 = bagged.predict_requests(reqs)
    assert not np.allclose(q_plain, q_bagged) and np.all(q90 >= q_bagged)
    # the booster beside the embedding blend: its trees learn what the blend leaves
    offset = fit_core(table, tr, replace(cfg, booster_offset=True))
    assert not np.allclose(offset.predict_requests(reqs)[0], q_plain)


def test_weighted_merge_and_bags_that_leave_two_sources_out_beside_the_full_fit() -> None:
    from orchestrator.predict.offline.bagging import merge_weighted

    x, y, sources = _data()
    parts = [lgb.train(PARAMS, lgb.Dataset(x[sources != s], y[sources != s]), 10) for s in "ab"]
    merged = merge_weighted(parts, [0.25, 0.75])
    want = 0.25 * parts[0].predict(x) + 0.75 * parts[1].predict(x)
    assert np.allclose(merged.predict(x), want, atol=1e-12)
    four = np.where(sources == "traffic", "d", sources)
    seen: list[set[str]] = []
    fitted: list[lgb.Booster] = []

    def fit(rows: np.ndarray) -> lgb.Booster:
        seen.append(set(four[rows]))
        fitted.append(lgb.train(PARAMS, lgb.Dataset(x[rows], y[rows]), 5))
        return fitted[-1]

    bagged = source_bagged(fit, four, frozenset(), leave=2, full=0.5)
    # every pair of the four sources left out once, then the fit on all of them
    pairs = [{"c", "d"}, {"b", "d"}, {"b", "c"}, {"a", "d"}, {"a", "c"}, {"a", "b"}]
    assert seen == [*pairs, set("abcd")]
    assert bagged is not None and bagged.num_trees() == 35
    bags = np.mean([b.predict(x) for b in fitted[:6]], axis=0)
    assert np.allclose(bagged.predict(x), 0.5 * bags + 0.5 * fitted[6].predict(x), atol=1e-12)
    seen.clear()
    four[:8] = "c"  # c has the most rows: the one bag leaves it out
    assert source_bagged(fit, four, frozenset(), full=0.5, largest=True) is not None
    assert seen == [{"a", "b", "d"}, set("abcd")]
    assert source_bagged(fit, four, frozenset(), leave=3) is not None
    assert source_bagged(fit, four, frozenset(), leave=4) is None  # a bag would hold nothing
