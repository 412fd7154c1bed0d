"""Prompt types read off the dense features, and the terms that differ by type.

The training sources disagree on what prompt length says about answer length: in maths word
problems (GSM8K, the maths prompts of arena-hard and MT-Bench) a longer problem gets a longer
worked solution; in open chat it says nearly nothing. Where a request is mostly pasted
material (a text or code with an ask), the answer grows with the material in every source.
The boosters, pooled over all requests, learn neither well. `PromptTerms` is what is added
to both log quantiles beside them: the token-embedding ridge's score (its weight may differ
outside maths problems) and, per type, intercept + slope x the type's length feature.
Pure functions of feature vectors, shared by training and the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.predict.features import FEATURE_NAMES

_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
MAX_PROBLEM_TOKENS = 300  # a word problem is short; a longer maths prompt is something else
MIN_DIGIT_FRACTION = 0.005
MIN_PASTED_FRACTION = 0.5
_MAX_LOG_PROBLEM = float(np.log1p(MAX_PROBLEM_TOKENS))
# type -> the length feature its term reads
TYPE_LENGTH = {"math": "log_prompt_tokens", "pasted": "log_pasted_tokens"}


def math_problems(vectors: np.ndarray) -> np.ndarray:
    """Bool per row of dense features (R x F): a maths cue, digits, no code, a short ask."""
    v = np.atleast_2d(vectors)
    return (
        (v[:, _INDEX["cue_math"]] > 0)
        & (v[:, _INDEX["cue_code"]] == 0)
        & (v[:, _INDEX["code_fences"]] == 0)
        & (v[:, _INDEX["digit_fraction"]] > MIN_DIGIT_FRACTION)
        & (v[:, _INDEX["log_last_user_tokens"]] < _MAX_LOG_PROBLEM)
    )


def pasted_requests(vectors: np.ndarray, maths: np.ndarray | None = None) -> np.ndarray:
    """Bool per row: most of the ask is pasted material (and it is no maths problem; `maths`:
    `math_problems(vectors)` when the caller has it)."""
    v = np.atleast_2d(vectors)
    maths = math_problems(v) if maths is None else maths
    return (v[:, _INDEX["pasted_fraction"]] > MIN_PASTED_FRACTION) & ~maths


def of_type(kind: str, vectors: np.ndarray, maths: np.ndarray | None = None) -> np.ndarray:
    """Bool per row: of type `kind` (`maths`: `math_problems(vectors)`, if known)."""
    if kind == "math":
        return math_problems(vectors) if maths is None else maths
    return pasted_requests(vectors, maths)


def type_length(kind: str, vectors: np.ndarray) -> np.ndarray:
    """The length feature the type's term reads (log1p of tokens)."""
    return np.atleast_2d(vectors)[:, _INDEX[TYPE_LENGTH[kind]]].astype(np.float64)


@dataclass(frozen=True)
class PromptTerms:
    """Added to both log quantiles: `blend` x the embedding ridge's score; for requests that
    are not maths problems, (`chat_blend` - `blend`) x the score's deviation from its
    intercept on top (None: no such term; the deviation, so the types keep one level); for
    each type, intercept + slope x its length feature (`math_term`, `pasted_term`)."""

    blend: float = 0.0
    intercept: float = 0.0  # the embedding ridge's
    chat_blend: float | None = None
    math_term: tuple[float, float] = (0.0, 0.0)
    pasted_term: tuple[float, float] = (0.0, 0.0)

    @property
    def typed(self) -> bool:
        return self.chat_blend is not None or any(self.math_term) or any(self.pasted_term)

    def add(self, vectors: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The terms of requests with these dense features (R x F) and embedding scores (R)."""
        scores = np.asarray(scores, dtype=np.float64)
        out = self.blend * scores
        if not self.typed:
            return out
        maths = math_problems(vectors)
        if self.chat_blend is not None:
            deviation = (self.chat_blend - self.blend) * (scores - self.intercept)
            out = out + np.where(maths, 0.0, deviation)
        for kind, (intercept, slope) in (("math", self.math_term), ("pasted", self.pasted_term)):
            if intercept or slope:
                term = intercept + slope * type_length(kind, vectors)
                out = out + np.where(of_type(kind, vectors, maths), term, 0.0)
        return out


def fit_type_term(
    kind: str,
    residual: np.ndarray,
    vectors: np.ndarray,
    sources: np.ndarray,
    weight: np.ndarray,
    level: bool = False,
) -> tuple[float, float]:
    """(intercept, slope): weighted least squares of what the rest of the model misses on
    the training requests of this type against the type's length feature, the slope within
    sources (each source's means removed). The intercept centres the term on the type's
    mean length (the type's level stays the boosters'), or with `level` it is the mean
    remainder (the term also moves the type's level). Fewer than 30 requests: (0, 0)."""
    sel = of_type(kind, vectors) & (weight > 0)
    if sel.sum() < 30:
        return 0.0, 0.0
    r, x, w, src = residual[sel], type_length(kind, vectors[sel]), weight[sel], sources[sel]
    rc, xc = r.copy(), x.copy()
    for name in np.unique(src):
        m = src == name
        rc[m] -= np.average(r[m], weights=w[m])
        xc[m] -= np.average(x[m], weights=w[m])
    slope = float(np.sum(w * xc * rc) / max(float(np.sum(w * xc * xc)), 1e-12))
    if not level:
        return -slope * float(np.average(x, weights=w)), slope
    return float(np.average(r - slope * x, weights=w)), slope
