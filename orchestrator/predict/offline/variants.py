"""Quick leave-one-source-out comparison of training variants: Kendall tau only.

`loso.loso` scores everything that ships (conformal p90, baselines, online calibration) and
takes minutes per source; comparing ways to learn the ranking needs only the p50 order. Here
each source is scored by `fit_core` fitted on the others with the out-of-fold conformal step
skipped (a constant p50 shift moves no pair), so tau matches `loso` for the same
configuration up to the p50 clip at 0. Each row's profile is its answering model,
with the factor the training sources give it (0 for a model they do not hold), as in `loso`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
from scipy.stats import kendalltau

from orchestrator.predict.loaded_model import normalize_model_name
from orchestrator.predict.offline.fit import ConformalShifts, TrainConfig, fit_core
from orchestrator.predict.offline.importance import (
    ImportanceConfig,
    domain_inputs,
    toward_source,
)
from orchestrator.predict.offline.table import TRAFFIC_SOURCE, Table

# the configuration shipped before the prompt-type terms (issue 31's second session): the
# earlier rows change it, so they reproduce the table they were measured in
_BEFORE: dict[str, object] = {
    "type_terms": (),
    "chat_blend": None,
    "source_balance": 0.5,
    "cue_terms": False,
}
_MATH: dict[str, object] = {"type_terms": ("math",)}


def _before(**fields: object) -> dict[str, object]:
    return {**_BEFORE, **fields}


# the variants compared in docs/predictor.md (issue 31): name -> (label, TrainConfig fields)
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "shipped": ("shipped", {}),
    "before-types": ("shipped before the prompt-type terms", _before()),
    "p50-l2": ("p50 squared error", _before(p50_objective="regression")),
    "spread-std": ("per-source spread equalised", _before(source_scale="std")),
    "spread-rank": ("per-source normal-score targets", _before(source_scale="rank")),
    "ranker": ("p50 listwise ranker (rank_xendcg)", _before(p50_objective="rank")),
    "linear-trees": ("linear trees", _before(linear_tree=True)),
    "balance-0.75": ("source balance 0.75", {**_BEFORE, "source_balance": 0.75}),
    "blend-learned": ("blend learned out of source", _before(blend="learned")),
    "chat-x2": ("chat-like sources weigh 2x", _before(chat_weight=2.0)),
    "consistent": (
        "only features the training sources agree on",
        _before(consistent_features=True),
    ),
    # third session (issue 31)
    "emb-wordllama": ("WordLlama embedding ridge", _before(embedding_source="wordllama")),
    "emb-both": ("SmolLM2 + WordLlama embedding ridge", _before(embedding_source="both")),
    "monotone": (
        "p50 monotone in length requests (squared error)",
        _before(monotone_requests=True),
    ),
    "math-term": ("maths problems: length term with level", _before(**_MATH, type_levels=True)),
    "math-term-chat-1": (
        "maths length term with level + blend 1.0 outside maths problems",
        _before(**_MATH, type_levels=True, chat_blend=1.0),
    ),
    "math-pasted": (
        "maths-problem and pasted-material length terms with levels",
        _before(type_terms=("math", "pasted"), type_levels=True),
    ),
    "chat-blend-1": ("embedding blend 1.0 outside maths problems", _before(chat_blend=1.0)),
    "math-slope": ("maths problems: prompt-length slope", _before(**_MATH)),
    "math-pasted-slope": (
        "maths-problem and pasted-material slopes",
        _before(type_terms=("math", "pasted")),
    ),
    "math-slope-chat-075": (
        "maths slope + blend 0.75 outside maths problems",
        {"source_balance": 0.5, "cue_terms": False},
    ),
    "math-slope-chat-075-balance": (
        "maths slope + blend 0.75 outside maths + source balance 0.75",
        {"cue_terms": False},
    ),
    # fourth session (issue 31)
    "cue-terms": ("+ explicit length asks: signed linear cue term (shipped)", {}),
    # fifth session (issue 31): on the shipped configuration
    "ranker-now": (
        "p50 listwise ranker (rank_xendcg), shipped otherwise",
        {"p50_objective": "rank"},
    ),
    "pasted-now": ("+ pasted-material length slope", {"type_terms": ("math", "pasted")}),
    "balance-1": ("source balance 1.0 (equal source mass)", {"source_balance": 1.0}),
    # session 17 (issue 31)
    "booster-offset": ("boosters fitted beside the embedding blend", {"booster_offset": True}),
    "emb-chat-rows": ("embedding ridge fitted without maths problems", {"embedding_rows": "chat"}),
    "emb-minilm": (
        "all-MiniLM-L6-v2 distilled onto the vocabulary",
        {"embedding_source": "minilm"},
    ),
    "emb-smollm2-minilm": (
        "SmolLM2 + distilled MiniLM ridge",
        {"embedding_source": "smollm2+minilm"},
    ),
    "p50-source-bag": ("p50: mean of boosters each without one source", {"p50_source_bag": True}),
    # session 18 (issue 31): around the source bag
    "p50-bag-5": (
        "p50: the 4 source bags + the booster on all sources, 1/5 each",
        {"p50_source_bag": True, "p50_bag_full": 0.2},
    ),
    "p50-bag-half": (
        "p50: half the booster on all sources, half the 4 source bags",
        {"p50_source_bag": True, "p50_bag_full": 0.5},
    ),
    "p50-bag-chat-05": (
        "p50 source bag + embedding weight 0.5 outside maths problems",
        {"p50_source_bag": True, "chat_blend": 0.5},
    ),
    "p50-bag-pairs": (
        "p50: mean of boosters each without two sources",
        {"p50_source_bag": True, "p50_bag_leave": 2},
    ),
    "p50-bag-largest": (
        "p50: half the booster on all sources, half the one without the largest source",
        {"p50_source_bag": True, "p50_bag_largest": True, "p50_bag_full": 0.5},
    ),
    "p50-bag-largest-q": (
        "p50: 3/4 the booster on all sources, 1/4 the one without the largest source",
        {"p50_source_bag": True, "p50_bag_largest": True, "p50_bag_full": 0.75},
    ),
}

# session 15 (issue 31): the training rows weighted toward the left-out source's prompts
# (its unlabelled traffic; `importance.py`), shipped configuration otherwise
TRAFFIC_VARIANTS: dict[str, tuple[str, ImportanceConfig]] = {
    "traffic-0.25": (
        "weighted toward the traffic's prompts, odds ** 0.25",
        ImportanceConfig(temper=0.25, clip=10.0, damp=100.0),
    ),
    "traffic-0.5": (
        "weighted toward the traffic's prompts, odds ** 0.5",
        ImportanceConfig(temper=0.5, clip=10.0, damp=100.0),
    ),
    "traffic-source": (
        "source mass toward the traffic's prompts (mean odds per source)",
        ImportanceConfig(temper=1.0, clip=10.0, damp=100.0, level="source"),
    ),
}


def _left_out_taus(
    table: Table, cfg: TrainConfig, tr: np.ndarray, scored: list[str], scale: np.ndarray | None
) -> dict[str, float]:
    """Tau on each `scored` source of `fit_core` on rows `tr` without the out-of-fold
    conformal step (neutral shifts: tau is unchanged)."""
    fitted = fit_core(table, tr, cfg, conformal_from=ConformalShifts(), request_scale=scale)
    factors = {normalize_model_name(k): v for k, v in fitted.offsets.items()}
    out: dict[str, float] = {}
    for src in scored:
        rows = np.where(table.row_source == src)[0]
        q50, _ = fitted.predict_requests(table.row_request[rows])
        model = table.row_model[rows]
        off = np.array([factors.get(normalize_model_name(m), 0.0) for m in model])
        out[src] = float(kendalltau(q50 + off, table.row_tokens[rows]).statistic)
    return out


def tau_by_source(
    table: Table,
    cfg: TrainConfig,
    sources: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    importance: ImportanceConfig | None = None,
    exclude: Iterable[str] = (),
) -> dict[str, float]:
    """Kendall tau of the p50 (plus the answering model's factor) on each left-out source.

    `importance`: the training rows are reweighted toward the left-out source's prompts (its
    unlabelled traffic: `importance.py`). `exclude`: sources left out of training too (the
    inner folds of a nested check)."""
    say = progress or (lambda line: None)
    dropped = {TRAFFIC_SOURCE, *exclude}
    names = list(sources or sorted(set(table.row_source) - dropped))
    inputs = None
    if importance is not None and importance.temper:
        inputs = domain_inputs(table.lexical_ids, table.vectors)
    out: dict[str, float] = {}
    for src in names:
        started = time.perf_counter()
        tr = (table.row_source != src) & ~np.isin(table.row_source, list(dropped))
        scale = None
        if inputs is not None and importance is not None:
            scale = toward_source(table, tr, src, importance, inputs)
        out[src] = _left_out_taus(table, cfg, tr, [src], scale)[src]
        say(f"left out {src}: tau {out[src]:.3f} ({time.perf_counter() - started:.0f} s)")
    return out


def nested_importance(
    table: Table,
    cfg: TrainConfig,
    candidates: list[ImportanceConfig],
    outer: list[dict[str, float]],
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, int], dict[str, float]]:
    """The nested check of traffic reweighting: for each left-out source, the candidate
    (index into `candidates`, temper 0 included for "none") with the best mean tau over
    leave-one-source-out on the other four (each inner source's prompts the traffic), and
    that candidate's outer tau (`outer[k]`: `tau_by_source` of candidate k). Returns
    (choice per source, outer tau per source)."""
    say = progress or (lambda line: None)
    names = sorted(set(table.row_source) - {TRAFFIC_SOURCE})
    inputs = domain_inputs(table.lexical_ids, table.vectors)
    inner: dict[tuple[str, str, int], float] = {}
    for k, imp in enumerate(candidates):
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                tr = ~np.isin(table.row_source, [a, b, TRAFFIC_SOURCE])
                for held, target in ((a, b), (b, a)):
                    if not imp.temper and (held, target, k) in inner:
                        continue
                    started = time.perf_counter()
                    if imp.temper:
                        scale = toward_source(table, tr, target, imp, inputs)
                        tau = _left_out_taus(table, cfg, tr, [target], scale)
                    else:  # one unweighted fit scores both: the same training rows
                        tau = _left_out_taus(table, cfg, tr, [target, held], None)
                        inner[(target, held, k)] = tau[held]
                    inner[(held, target, k)] = tau[target]
                    say(
                        f"candidate {k} outer {held} inner {target}: "
                        f"{inner[(held, target, k)]:.3f} ({time.perf_counter() - started:.0f} s)"
                    )
    choice: dict[str, int] = {}
    taus: dict[str, float] = {}
    for src in names:
        means = [
            float(np.mean([inner[(src, t, k)] for t in names if t != src]))
            for k in range(len(candidates))
        ]
        choice[src] = int(np.argmax(means))
        taus[src] = outer[choice[src]][src]
        say(f"outer {src}: inner means {[round(m, 4) for m in means]} -> {choice[src]}")
    return choice, taus


def nested_configs(
    table: Table,
    cfgs: list[TrainConfig],
    outer: list[dict[str, float]],
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, int], dict[str, float], dict[str, list[float]]]:
    """The nested check of a choice among configurations: for each left-out source, the
    configuration (index into `cfgs`) with the best mean tau over leave-one-source-out on
    the other sources (each inner source scored by a fit on the rest), and that
    configuration's outer tau (`outer[k]`: `tau_by_source` of `cfgs[k]`). One fit without a
    pair of sources scores both. Returns (choice, outer tau, inner means) per source."""
    say = progress or (lambda line: None)
    names = sorted(set(table.row_source) - {TRAFFIC_SOURCE})
    inner: dict[tuple[str, str, int], float] = {}
    for k, cfg in enumerate(cfgs):
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                started = time.perf_counter()
                tr = ~np.isin(table.row_source, [a, b, TRAFFIC_SOURCE])
                tau = _left_out_taus(table, cfg, tr, [a, b], None)
                inner[(b, a, k)], inner[(a, b, k)] = tau[a], tau[b]
                say(
                    f"candidate {k} without {a}, {b}: {tau[a]:.3f}, {tau[b]:.3f} "
                    f"({time.perf_counter() - started:.0f} s)"
                )
    choice: dict[str, int] = {}
    taus: dict[str, float] = {}
    means: dict[str, list[float]] = {}
    for src in names:
        means[src] = [
            float(np.mean([inner[(src, t, k)] for t in names if t != src]))
            for k in range(len(cfgs))
        ]
        choice[src] = int(np.argmax(means[src]))
        taus[src] = outer[choice[src]][src]
        say(f"outer {src}: inner means {[round(m, 4) for m in means[src]]} -> {choice[src]}")
    return choice, taus, means
