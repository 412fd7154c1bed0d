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

# the variants compared in docs/predictor.md (issue 31): name -> (label, TrainConfig fields)
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "shipped": ("shipped", {}),
    "p50-l2": ("p50 squared error", {"p50_objective": "regression"}),
    "spread-std": ("per-source spread equalised", {"source_scale": "std"}),
    "spread-rank": ("per-source normal-score targets", {"source_scale": "rank"}),
    "ranker": ("p50 listwise ranker (rank_xendcg)", {"p50_objective": "rank"}),
    "linear-trees": ("linear trees", {"linear_tree": True}),
    "balance-0.75": ("source balance 0.75", {"source_balance": 0.75}),
    "blend-learned": ("blend learned out of source", {"blend": "learned"}),
    "chat-x2": ("chat-like sources weigh 2x", {"chat_weight": 2.0}),
    "consistent": ("only features the training sources agree on", {"consistent_features": True}),
    # third session (issue 31)
    "emb-wordllama": ("WordLlama embedding ridge", {"embedding_source": "wordllama"}),
    "emb-both": ("SmolLM2 + WordLlama embedding ridge", {"embedding_source": "both"}),
    "monotone": ("p50 monotone in length requests (squared error)", {"monotone_requests": True}),
    "math-term": (
        "maths word problems: prompt-length term",
        {"type_terms": ("math",), "type_levels": True},
    ),
    "pasted-term": (
        "pasted material: pasted-length term",
        {"type_terms": ("pasted",), "type_levels": True},
    ),
    "math-pasted": (
        "maths-problem and pasted-material length terms",
        {"type_terms": ("math", "pasted"), "type_levels": True},
    ),
    "math-pasted-chat-075": (
        "both length terms + blend 0.75 outside maths problems",
        {"type_terms": ("math", "pasted"), "type_levels": True, "chat_blend": 0.75},
    ),
    "math-term-chat-075": (
        "prompt-length term + blend 0.75 outside maths problems",
        {"type_terms": ("math",), "type_levels": True, "chat_blend": 0.75},
    ),
    "math-slope": (
        "maths problems: prompt-length slope (type level kept)",
        {"type_terms": ("math",)},
    ),
    "math-slope-chat-075": (
        "maths slope + blend 0.75 outside maths problems",
        {"type_terms": ("math",), "chat_blend": 0.75},
    ),
    "math-pasted-slope": (
        "maths-problem and pasted-material slopes (type levels kept)",
        {"type_terms": ("math", "pasted")},
    ),
    "chat-blend-1": ("embedding blend 1.0 outside maths problems", {"chat_blend": 1.0}),
    "math-term-chat-1": (
        "prompt-length term + blend 1.0 outside maths problems",
        {"type_terms": ("math",), "type_levels": True, "chat_blend": 1.0},
    ),
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
