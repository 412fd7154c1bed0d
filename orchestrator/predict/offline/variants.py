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
from orchestrator.predict.offline.fit import ConformalShifts, Fitted, TrainConfig, fit_core
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
}


def _quick_fit(table: Table, train_rows: np.ndarray, cfg: TrainConfig) -> Fitted:
    """`fit_core` without the out-of-fold conformal step (neutral shifts: tau is unchanged)."""
    return fit_core(table, train_rows, cfg, conformal_from=ConformalShifts())


def tau_by_source(
    table: Table,
    cfg: TrainConfig,
    sources: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Kendall tau of the p50 (plus the answering model's factor) on each left-out source."""
    say = progress or (lambda line: None)
    names = list(sources or sorted(set(table.row_source) - {TRAFFIC_SOURCE}))
    out: dict[str, float] = {}
    for src in names:
        started = time.perf_counter()
        tr = (table.row_source != src) & (table.row_source != TRAFFIC_SOURCE)
        rows = np.where(table.row_source == src)[0]
        fitted = _quick_fit(table, tr, cfg)
        q50, _ = fitted.predict_requests(table.row_request[rows])
        factors = {normalize_model_name(k): v for k, v in fitted.offsets.items()}
        off = np.array([factors.get(normalize_model_name(m), 0.0) for m in table.row_model[rows]])
        out[src] = float(kendalltau(q50 + off, table.row_tokens[rows]).statistic)
        say(f"left out {src}: tau {out[src]:.3f} ({time.perf_counter() - started:.0f} s)")
    return out
