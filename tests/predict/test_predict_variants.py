"""Training variants of issue 31: per-source target transforms, the ranking p50 booster, and
the quick tau-only leave-one-source-out comparison."""

from __future__ import annotations

from dataclasses import replace

import lightgbm as lgb
import numpy as np
import pytest
from predict_helpers import synthetic_examples
from scipy.stats import kendalltau, spearmanr

from orchestrator.predict import lexical
from orchestrator.predict.offline.boosters import lgb_params
from orchestrator.predict.offline.consistent import disagreeing_features, drop_disagreeing
from orchestrator.predict.offline.fit import TrainConfig, fit_core, row_weights
from orchestrator.predict.offline.ranker import fold_line, rank_booster
from orchestrator.predict.offline.stack import blend_weights
from orchestrator.predict.offline.table import featurize_examples
from orchestrator.predict.offline.targets import normal_scores, rescale_sources
from orchestrator.predict.offline.variants import VARIANTS, tau_by_source


def _two_sources(n: int = 400):
    rng = np.random.default_rng(3)
    sources = np.repeat(np.array(["wide", "narrow"]), n)
    y = np.concatenate([5.0 + 2.0 * rng.standard_normal(n), 3.0 + 0.2 * rng.standard_normal(n)])
    return y, sources


def test_std_mode_gives_every_source_the_mean_spread_and_keeps_its_order():
    y, sources = _two_sources()
    train = np.ones(len(y), dtype=bool)
    train[-10:] = False  # rows outside training keep their value
    out, spreads = rescale_sources(y, sources, train, np.ones(len(y)), "std")
    pooled = np.mean(list(spreads.values()))
    for s in ("wide", "narrow"):
        sel = train & (sources == s)
        assert out[sel].std() == pytest.approx(pooled, rel=1e-6)
        assert out[sel].mean() == pytest.approx(y[sel].mean())
        assert spearmanr(out[sel], y[sel]).statistic == pytest.approx(1.0)
    assert np.array_equal(out[~train], y[~train])


def test_rank_mode_keeps_only_the_order_inside_each_source():
    y, sources = _two_sources()
    train = np.ones(len(y), dtype=bool)
    out, _ = rescale_sources(y, sources, train, np.ones(len(y)), "rank")
    wide, narrow = out[sources == "wide"], out[sources == "narrow"]
    assert spearmanr(wide, y[sources == "wide"]).statistic == pytest.approx(1.0)
    # same order statistics around each source's own centre: equal spread
    assert np.sort(wide - wide.mean()) == pytest.approx(np.sort(narrow - narrow.mean()), abs=1e-9)
    with pytest.raises(ValueError, match="source_scale"):
        rescale_sources(y, sources, train, np.ones(len(y)), "zscore")


def test_normal_scores_share_a_score_between_ties():
    scores = normal_scores(np.array([1.0, 2.0, 2.0, 3.0]), np.ones(4))
    assert scores[1] == scores[2] and scores[0] < scores[1] < scores[3]
    assert scores.sum() == pytest.approx(0.0, abs=1e-9)


def test_fold_line_rewrites_the_output_exactly():
    rng = np.random.default_rng(0)
    x = rng.random((300, 3))
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(x, x[:, 0] + rng.random(300)),
        num_boost_round=8,
    )
    folded = fold_line(booster, 1.5, -2.0)
    assert folded.predict(x) == pytest.approx(1.5 - 2.0 * booster.predict(x), abs=1e-9)


def test_rank_booster_orders_rows_inside_each_source_on_the_length_scale():
    rng = np.random.default_rng(1)
    x = rng.random((1200, 4))
    groups = np.repeat(np.array(["a", "b"]), 600)
    y = 2.0 * x[:, 0] + 0.2 * rng.random(1200)  # the same task in both sources
    y[groups == "a"] += 3.0  # a source level the ranker must not need
    cfg = TrainConfig(rounds=30, min_data_in_leaf=20, threads=1)
    pred = rank_booster(lgb_params(cfg), cfg.rounds, x, y, np.ones(1200), groups).predict(x)
    for g in ("a", "b"):
        assert kendalltau(pred[groups == g], y[groups == g]).statistic > 0.6
    assert abs(np.mean(pred) - np.mean(y)) < 0.1  # mapped to log lengths by the folded line


def test_tau_by_source_scores_every_left_out_source():
    table = featurize_examples(synthetic_examples(("alpaca_eval", "gsm8k", "mt_bench"), 40))
    cfg = TrainConfig(rounds=10, threads=1, min_data_in_leaf=10, conformal_classes=2)
    lines: list[str] = []
    taus = tau_by_source(table, cfg, progress=lines.append)
    assert set(taus) == {"alpaca_eval", "gsm8k", "mt_bench"} and len(lines) == 3
    assert all(t > 0.3 for t in taus.values())
    assert VARIANTS["shipped"][1] == {}
    for _, fields in VARIANTS.values():
        TrainConfig(**fields)  # type: ignore[arg-type]  # every variant is a configuration


def test_blend_weights_fit_only_the_order_inside_each_source():
    rng = np.random.default_rng(2)
    n = 2000
    sources = np.repeat(np.array(["a", "b"]), n // 2)
    scores = rng.standard_normal((n, 2))
    residual = 0.7 * scores[:, 0] + 0.05 * rng.standard_normal(n)
    residual[sources == "a"] += 4.0  # a level between sources is not what the blend explains
    weights = blend_weights(residual, scores, sources, np.ones(n))
    assert weights[0] == pytest.approx(0.7, abs=0.02) and weights[1] == pytest.approx(0, abs=0.02)
    # a score that only hurts gets weight 0, never a negative one
    assert blend_weights(-residual, scores, sources, np.ones(n))[0] == 0.0


def test_learned_blend_folds_both_ridges_into_the_token_weights():
    table = featurize_examples(synthetic_examples(("alpaca_eval", "gsm8k", "mt_bench"), 40))
    cfg = TrainConfig(rounds=10, threads=1, min_data_in_leaf=10, conformal_classes=2)
    tr = table.row_source != "mt_bench"
    # the learned blend is a variant of the configuration before the prompt-type terms
    fitted = fit_core(table, tr, replace(cfg, blend="learned", type_terms=(), chat_blend=None))
    assert fitted.embedding_blend == 1.0
    weights, intercept = fitted.embedding
    assert np.abs(weights).max() > 0  # the synthetic lengths follow the prompt's words
    reqs = np.unique(table.row_request[~tr])
    # the runtime's score of a request = the blended term the fit added (full-fit requests)
    runtime = [lexical.score(table.lexical_ids[r], weights, intercept) for r in reqs[:5]]
    assert fitted.blend(reqs[:5]) == pytest.approx(runtime, abs=1e-4)


def test_chat_weight_scales_the_chat_like_sources_rows():
    table = featurize_examples(synthetic_examples(("alpaca_eval", "gsm8k", "mt_bench"), 20))
    tr = np.ones(len(table.row_source), dtype=bool)
    plain = row_weights(table, tr, TrainConfig())
    chat = row_weights(table, tr, TrainConfig(chat_weight=2.0))
    src = table.row_source

    def ratio(w: np.ndarray) -> float:
        return w[src == "alpaca_eval"][0] / w[src == "gsm8k"][0]

    assert ratio(chat) == pytest.approx(2.0 * ratio(plain))
    assert chat.mean() == pytest.approx(1.0)


def test_a_feature_that_flips_direction_between_sources_is_dropped():
    rng = np.random.default_rng(4)
    n = 300
    sources = np.repeat(np.array(["a", "b"]), n)
    agree = rng.random(2 * n)
    flip = rng.random(2 * n)
    target = agree + np.where(sources == "a", flip, -flip) + 0.1 * rng.random(2 * n)
    vectors = np.column_stack([agree, flip, np.zeros(2 * n)])
    assert disagreeing_features(vectors, target, sources).tolist() == [False, True, False]
    folds = np.zeros(2 * n, dtype=np.int64)
    x = drop_disagreeing(vectors, vectors, 3, target, folds, sources)
    assert np.array_equal(x[:, 0], agree) and not x[:, 1].any()


def test_nested_check_takes_the_configuration_the_inner_folds_rank_best():
    from orchestrator.predict.offline.variants import nested_configs

    sources = ("alpaca_eval", "gsm8k", "mt_bench")
    table = featurize_examples(synthetic_examples(sources, 48))
    good = TrainConfig(rounds=10, threads=1, min_data_in_leaf=10, conformal_classes=2)
    # no booster learning, no blend, no terms: only the answering models' factor ranks
    blind = replace(
        good,
        min_data_in_leaf=10**6,  # no split: a constant booster
        embedding_blend=0.0,
        type_terms=(),
        chat_blend=None,
        cue_terms=False,
    )
    outer = [{s: -1.0 for s in sources}, {s: float(i) for i, s in enumerate(sources)}]
    lines: list[str] = []
    choice, taus, means = nested_configs(table, [blind, good], outer, progress=lines.append)
    assert choice == {s: 1 for s in sources}  # the inner folds prefer the learning one
    assert taus == outer[1]  # and the outer figure is that configuration's
    assert all(m[1] > m[0] for m in means.values())
    assert len(lines) == 2 * 3 + 3  # one fit per pair of sources and configuration
