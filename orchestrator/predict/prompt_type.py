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
from scipy.optimize import nnls

from orchestrator.predict.features import FEATURE_NAMES

_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
_I_CUE_MATH, _I_CUE_CODE, _I_FENCES = _INDEX["cue_math"], _INDEX["cue_code"], _INDEX["code_fences"]
_I_DIGITS, _I_LAST_TOKENS = _INDEX["digit_fraction"], _INDEX["log_last_user_tokens"]
_I_PASTED, _I_REQUESTED = _INDEX["pasted_fraction"], _INDEX["log_requested_tokens"]
_I_BRIEF, _I_LONG = _INDEX["cue_brief"], _INDEX["cue_long"]
MAX_PROBLEM_TOKENS = 300  # a word problem is short; a longer maths prompt is something else
MIN_DIGIT_FRACTION = 0.005
MIN_PASTED_FRACTION = 0.5
_MAX_LOG_PROBLEM = float(np.log1p(MAX_PROBLEM_TOKENS))
# type -> the length feature its term reads
TYPE_LENGTH = {"math": "log_prompt_tokens", "pasted": "log_pasted_tokens"}
# explicit length asks ("briefly", "in detail", "a 500-word essay", "list 10"): few requests
# of each source carry one, too few for the boosters' large leaves; a linear term with signs
# fixed in advance (`fit_cue_term`) moves them; a requested size above this is a false match
MAX_LOG_REQUESTED = float(np.log1p(4000))


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
    # explicit length asks outside maths problems (`cue_design`): brief cue, long cue,
    # a requested size, and the slope in its log1p minus `REQUESTED_CENTRE` (log units)
    cue_term: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def typed(self) -> bool:
        return (
            self.chat_blend is not None
            or any(self.math_term)
            or any(self.pasted_term)
            or any(self.cue_term)
        )

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
        if any(self.cue_term):
            out = out + np.where(maths, 0.0, cue_design(vectors) @ np.asarray(self.cue_term))
        return out

    def add_one(self, vector: np.ndarray, score: float) -> float:
        """`add` of one request (its F dense features, its embedding score), the same float
        operation by operation, without arrays: a request's prediction reads it (~5 us
        instead of ~30)."""
        score = float(score)
        out = self.blend * score
        if not self.typed:
            return out
        v = np.asarray(vector).reshape(-1)  # numpy scalars compare as `add`'s arrays do
        maths = bool(
            v[_I_CUE_MATH] > 0
            and v[_I_CUE_CODE] == 0
            and v[_I_FENCES] == 0
            and v[_I_DIGITS] > MIN_DIGIT_FRACTION
            and v[_I_LAST_TOKENS] < _MAX_LOG_PROBLEM
        )
        if self.chat_blend is not None:
            out = out + (
                0.0 if maths else (self.chat_blend - self.blend) * (score - self.intercept)
            )
        for kind, (intercept, slope) in (("math", self.math_term), ("pasted", self.pasted_term)):
            if intercept or slope:
                typed = (
                    maths
                    if kind == "math"
                    else bool(v[_I_PASTED] > MIN_PASTED_FRACTION) and not maths
                )
                length = float(v[_INDEX[TYPE_LENGTH[kind]]])
                out = out + (intercept + slope * length if typed else 0.0)
        if any(self.cue_term):
            # the same (1 x 4) @ (4,) product as `add`, so the same summation
            cue = 0.0 if maths else float((_cue_row(v) @ np.asarray(self.cue_term))[0])
            out = out + cue
        return out


REQUESTED_CENTRE = float(np.log1p(300))  # the requested-size slope pivots here


def _cue_row(v: np.ndarray) -> np.ndarray:
    """`cue_design` of one vector (1 x 4), element by element the same floats."""
    asked = float(v[_I_REQUESTED])
    has = float(asked > 0)
    brief, long = float(v[_I_BRIEF] > 0), float(v[_I_LONG] > 0)
    return np.array([[brief, long, has, has * (min(asked, MAX_LOG_REQUESTED) - REQUESTED_CENTRE)]])


def cue_design(vectors: np.ndarray) -> np.ndarray:
    """R x 4: brief cue, long cue, requested size (0/1) and, where one is requested, its
    log1p (capped at `MAX_LOG_REQUESTED`) minus `REQUESTED_CENTRE`."""
    v = np.atleast_2d(vectors)
    asked = v[:, _INDEX["log_requested_tokens"]].astype(np.float64)
    has = (asked > 0).astype(np.float64)
    return np.column_stack(
        [
            (v[:, _INDEX["cue_brief"]] > 0).astype(np.float64),
            (v[:, _INDEX["cue_long"]] > 0).astype(np.float64),
            has,
            has * (np.minimum(asked, MAX_LOG_REQUESTED) - REQUESTED_CENTRE),
        ]
    )


def fit_cue_term(
    residual: np.ndarray, vectors: np.ndarray, sources: np.ndarray, weight: np.ndarray
) -> tuple[float, float, float, float]:
    """`PromptTerms.cue_term`: weighted least squares of what the rest of the model misses
    on the training requests that are not maths problems against `cue_design`, within
    sources (each source's means removed: the contrast a cue makes inside one workload),
    with the directions fixed (brief <= 0, long >= 0, slope in the requested size >= 0;
    the requested level free). A cue column with fewer than 10 requests stays 0."""
    keep = ~math_problems(vectors) & (weight > 0)
    x, r, w, src = cue_design(vectors[keep]), residual[keep], weight[keep], sources[keep]
    used = (x != 0).sum(axis=0) >= 10
    xc, rc = x.copy(), r.copy()
    for name in np.unique(src):
        m = src == name
        xc[m] -= np.average(x[m], axis=0, weights=w[m])
        rc[m] -= np.average(r[m], weights=w[m])
    # signs: brief -, long +, requested level + and -, slope +
    signs = np.array([-1.0, 1.0, 1.0, -1.0, 1.0])
    cols = np.array([0, 1, 2, 2, 3])
    on = used[cols]
    root = np.sqrt(w)[:, None]
    design = (xc[:, cols] * signs)[:, on] * root
    coef = np.zeros(len(cols))
    if on.any():
        coef[on] = nnls(design, rc * root[:, 0])[0]
    out = np.zeros(4)
    np.add.at(out, cols, coef * signs)
    return tuple(float(c) for c in out)  # type: ignore[return-value]


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
