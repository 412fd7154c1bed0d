"""Prompt types: which requests are maths word problems, the terms that differ by type, and
the runtime applying what an artifact holds of them."""

from __future__ import annotations

import numpy as np
import pytest
from predict_helpers import chat

from orchestrator.predict import Predictor
from orchestrator.predict.artifact import load_artifact
from orchestrator.predict.features import FEATURE_NAMES
from orchestrator.predict.prompt_type import (
    PromptTerms,
    fit_type_term,
    math_problems,
    type_length,
)

PROBLEM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?"
)
NOT_PROBLEMS = [
    "Write a poem about 3 cats sleeping in the sun.",
    "How many lines of code does this need? ```python\nx = 1 + 2\n```",
    "Explain how a refrigerator works.",
]


def _vectors(predictor: Predictor, texts: list[str]) -> np.ndarray:
    return np.array([predictor.featurize(chat(t)).features.vector for t in texts])


def test_math_problems_are_told_from_chat(predictor):
    vectors = _vectors(predictor, [PROBLEM, *NOT_PROBLEMS])
    assert math_problems(vectors).tolist() == [True, False, False, False]
    assert type_length("math", vectors)[0] > 3.0  # log1p of ~45 tokens


def test_terms_by_type_keep_one_level():
    """The chat weight reads the score's deviation from the intercept: a request scored at
    the intercept gets the same term whatever its type's weight."""
    vectors = np.zeros((2, len(FEATURE_NAMES)), dtype=np.float32)
    terms = PromptTerms(blend=0.5, intercept=5.0, chat_blend=1.0)
    assert terms.add(vectors, np.array([5.0, 5.0])).tolist() == [2.5, 2.5]
    # above the intercept, the chat weight applies in full
    assert terms.add(vectors, np.array([6.0, 6.0]))[0] == pytest.approx(3.0 + 0.5 * 1.0)
    assert PromptTerms(blend=0.5, intercept=5.0).add(vectors, np.array([6.0]))[0] == 3.0


def test_fit_math_term_learns_the_slope_within_sources(predictor):
    rng = np.random.default_rng(4)
    base = _vectors(predictor, [PROBLEM])[0]
    n = 300
    vectors = np.repeat(base[None], n, axis=0)
    col = FEATURE_NAMES.index("log_prompt_tokens")
    vectors[:, col] = rng.uniform(3.0, 5.5, size=n)
    sources = np.repeat(np.array(["a", "b"]), n // 2)
    # each source at its own level; within each, 0.4 per log prompt token
    residual = np.where(sources == "a", 1.0, -2.0) + 0.4 * vectors[:, col]
    residual = residual + rng.normal(0.0, 0.05, size=n)
    intercept, slope = fit_type_term("math", residual, vectors, sources, np.ones(n), level=True)
    assert slope == pytest.approx(0.4, abs=0.03)
    assert intercept == pytest.approx(-0.5, abs=0.1)  # the mean of the two levels
    # by default the term is centred on the type's mean length: the level stays the model's
    centred = fit_type_term("math", residual, vectors, sources, np.ones(n))
    assert centred[1] == slope
    assert centred[0] + centred[1] * vectors[:, col].mean() == pytest.approx(0.0, abs=1e-9)
    # too few problems: no term
    assert fit_type_term("math", residual[:10], vectors[:10], sources[:10], np.ones(10)) == (
        0.0,
        0.0,
    )


def test_runtime_applies_the_artifacts_type_terms(artifact, tmp_path):
    artifact.save(tmp_path / "a")
    typed = load_artifact(tmp_path / "a")
    typed.meta = typed.meta.model_copy(update={"math_term": (0.25, 0.5)})
    plain, with_terms = Predictor(artifact, store=None), Predictor(typed, store=None)
    problem = plain.featurize(chat(PROBLEM)).features
    moved = with_terms.featurize(chat(PROBLEM)).features
    length = type_length("math", np.array([problem.vector]))[0]
    shipped_intercept, shipped_slope = artifact.meta.math_term
    expected = 0.25 + 0.5 * length - (shipped_intercept + shipped_slope * length)
    assert moved.base_log_p50 - problem.base_log_p50 == pytest.approx(expected, abs=1e-5)
    for text in NOT_PROBLEMS:
        a = plain.featurize(chat(text)).features
        b = with_terms.featurize(chat(text)).features
        assert a.base_log_p50 == b.base_log_p50


def test_shipped_artifact_holds_the_type_terms(artifact):
    terms = artifact.prompt_terms
    assert terms.typed and terms.chat_blend is not None and terms.chat_blend > terms.blend
    assert terms.math_term[1] > 0  # a longer maths problem, a longer worked solution


def _edge_vectors(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    """Vectors whose type tests sit on and around their thresholds (and random elsewhere)."""
    v = rng.uniform(-1.0, 8.0, size=(n, len(FEATURE_NAMES))).astype(dtype)
    col = {name: FEATURE_NAMES.index(name) for name in FEATURE_NAMES}
    near = np.array([0.0, 0.005, 0.5, 1.0, np.log1p(300), np.log1p(4000), -0.0], dtype=dtype)
    for name in ("cue_math", "cue_code", "code_fences", "digit_fraction", "pasted_fraction",
                 "log_last_user_tokens", "log_requested_tokens", "cue_brief", "cue_long",
                 "log_pasted_tokens", "log_prompt_tokens"):  # fmt: skip
        pick = rng.integers(0, 3, size=n)
        at = rng.choice(near, size=n)
        nudged = np.nextafter(at, rng.choice(np.array([-np.inf, np.inf], dtype=dtype), size=n))
        v[:, col[name]] = np.where(pick == 0, at, np.where(pick == 1, nudged, v[:, col[name]]))
    return v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_request_terms_equal_the_rows(dtype):
    """`add_one` (what a request's prediction reads) is `add` of that one row (1 x F: a
    many-row product may sum in another order), to the bit, for every kind of term, on
    vectors at the type thresholds, and the shipped artifact's terms."""
    rng = np.random.default_rng(30)
    vectors = _edge_vectors(rng, 3000, dtype)
    scores = rng.normal(5.5, 1.0, size=len(vectors))
    shipped = load_artifact(None).prompt_terms
    every = [
        shipped,
        PromptTerms(blend=0.5),
        PromptTerms(blend=0.3, intercept=5.0, chat_blend=0.9),
        PromptTerms(
            blend=0.5,
            intercept=5.6,
            chat_blend=0.75,
            math_term=(-0.9, 0.2),
            pasted_term=(0.4, 0.1),
            cue_term=(-0.1, 0.03, 0.06, 0.2),
        ),  # fmt: skip
        PromptTerms(pasted_term=(0.0, -0.3)),
    ]
    for terms in every:
        pairs = list(zip(vectors, scores, strict=True))
        rows = [terms.add(v.reshape(1, -1), np.array([s]))[0] for v, s in pairs]
        one = [terms.add_one(v, s) for v, s in pairs]
        assert np.array_equal(np.array(one), np.array(rows)), terms
        assert all(type(x) is float for x in one)
