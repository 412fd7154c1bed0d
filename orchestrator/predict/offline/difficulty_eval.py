"""Held-out measures of the difficulty model, per left-out MMLU subject and per source.

- AUC of "the weak model fails" (1 - P(weak answers well) as the score);
- expected calibration error of P(weak answers well) (10 equal-width bins), beside its sampling
  floor: the mean ECE a perfectly calibrated model with the same probabilities shows on the
  same number of prompts (outcomes drawn from the probabilities; a few hundred prompts leave
  ~0.05 of ECE even when nothing is miscalibrated);
- RouteLLM's call-performance threshold: the share of requests sent to the strong model,
  hardest first, needed to reach 95 % of the strong model's accuracy (0 when the weak model
  alone reaches it), beside what random routing needs for the same target.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

TARGET_SHARE = 0.95


def auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    pos = positive.astype(bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return None
    r = rankdata(score)
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def ece(prob: np.ndarray, outcome: np.ndarray, bins: int = 10) -> float:
    idx = np.minimum((prob * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(prob[m].mean() - outcome[m].mean())
    return float(total / max(len(prob), 1))


FLOOR_DRAWS = 200


def ece_floor(prob: np.ndarray, bins: int = 10, draws: int = FLOOR_DRAWS) -> float:
    """Mean ECE of outcomes drawn from `prob` itself (seeded): what sampling alone leaves."""
    rng = np.random.default_rng(0)
    return float(np.mean([ece(prob, rng.random(len(prob)) < prob, bins) for _ in range(draws)]))


def strong_share_needed(
    p_weak: np.ndarray, weak_ok: np.ndarray, strong_ok: np.ndarray, target: float = TARGET_SHARE
) -> float | None:
    """Smallest share of strong calls (lowest P(weak ok) first) reaching target x strong acc."""
    n = len(p_weak)
    goal = target * strong_ok.mean() * n
    order = np.argsort(p_weak, kind="stable")
    gain = (strong_ok[order] - weak_ok[order]).astype(float)
    correct = weak_ok.sum() + np.concatenate([[0.0], np.cumsum(gain)])
    hit = np.flatnonzero(correct >= goal - 1e-9)
    return float(hit[0] / n) if len(hit) else None


def random_share_needed(
    weak_ok: np.ndarray, strong_ok: np.ndarray, target: float = TARGET_SHARE
) -> float | None:
    w, s = weak_ok.mean(), strong_ok.mean()
    goal = target * s
    if w >= goal:
        return 0.0
    return float((goal - w) / (s - w)) if s > w else None


def measures(p_weak: np.ndarray, weak_ok: np.ndarray, strong_ok: np.ndarray) -> dict:
    return {
        "n": len(p_weak),
        "weak_fail_rate": float(1 - weak_ok.mean()),
        "auc_weak_fails": auc(1 - p_weak, 1 - weak_ok),
        "ece": ece(p_weak, weak_ok),
        "ece_floor": ece_floor(p_weak),
        "strong_share_for_95": strong_share_needed(p_weak, weak_ok, strong_ok),
        "random_share_for_95": random_share_needed(weak_ok, strong_ok),
    }


def report(
    unit: np.ndarray, source: np.ndarray, p_weak: np.ndarray, weak: np.ndarray, strong: np.ndarray
) -> dict:
    """Per left-out unit, per source pooled, and the mean over MMLU subjects."""
    per_unit = {
        u: measures(p_weak[unit == u], weak[unit == u], strong[unit == u])
        for u in sorted(set(unit.tolist()))
    }
    per_source = {
        s: measures(p_weak[source == s], weak[source == s], strong[source == s])
        for s in sorted(set(source.tolist()))
    }
    subjects = [m for u, m in per_unit.items() if u in set(unit[source == "mmlu"].tolist())]

    def mean(key: str) -> float | None:
        vals = [m[key] for m in subjects if m[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "per_unit": per_unit,
        "per_source": per_source,
        "mmlu_subject_mean": {
            k: mean(k) for k in ("auc_weak_fails", "ece", "ece_floor", "strong_share_for_95")
        },
    }


def render(rep: dict) -> str:
    """A markdown table: pooled sources first, then every left-out MMLU subject."""

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [
        "| left out | n | weak fails | AUC (weak fails) | ECE | ECE floor | strong calls for 95% "
        "| random |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [(f"**{s} (pooled)**", m) for s, m in rep["per_source"].items()]
    rows += [(u, m) for u, m in rep["per_unit"].items() if u not in rep["per_source"]]
    for name, m in rows:
        lines.append(
            f"| {name} | {m['n']} | {m['weak_fail_rate']:.2f} | {f(m['auc_weak_fails'])} | "
            f"{f(m['ece'])} | {f(m['ece_floor'])} | {f(m['strong_share_for_95'])} | "
            f"{f(m['random_share_for_95'])} |"
        )
    mm = rep["mmlu_subject_mean"]
    lines.append(
        f"| mean of MMLU subjects | | | {f(mm['auc_weak_fails'])} | {f(mm['ece'])} | "
        f"{f(mm['ece_floor'])} | {f(mm['strong_share_for_95'])} | |"
    )
    return "\n".join(lines)
