"""Explicit length asks ("briefly", "in detail", "a 1500-word essay", "in one sentence"): the
signed cue term's fit, and the shipped predictor moving everyday requests the asked way."""

from __future__ import annotations

import numpy as np
import pytest
from predict_helpers import chat

from orchestrator.predict import Predictor
from orchestrator.predict.artifact import load_artifact
from orchestrator.predict.prompt_type import cue_design, fit_cue_term

PLAIN = "Explain how photosynthesis works."
ASKS = {
    "brief": "Briefly explain how photosynthesis works.",
    "one_sentence": "Explain how photosynthesis works in one sentence.",
    "detail": "Explain how photosynthesis works in detail.",
    "essay": "Write a detailed 1500-word essay explaining how photosynthesis works.",
}


def _vectors(predictor: Predictor, texts: list[str]) -> np.ndarray:
    return np.array([predictor.featurize(chat(t)).features.vector for t in texts])


def _p50(predictor: Predictor, text: str) -> float:
    return predictor.predict(chat(text)).p50_tokens


def test_cue_design_reads_the_asks(predictor):
    x = cue_design(_vectors(predictor, [PLAIN, *ASKS.values()]))
    plain, brief, one_sentence, detail, essay = x
    assert plain.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert brief[0] == 1.0 and detail[1] == 1.0
    assert one_sentence[2] == 1.0 and one_sentence[3] < 0  # ~25 tokens asked: below the pivot
    assert essay[2] == 1.0 and essay[3] > 0  # ~2,000 tokens asked


def _synthetic(predictor: Predictor, brief_effect: float, n: int = 240):
    """Requests of two sources at their own levels; a brief ask moves the answer by
    `brief_effect`, a long ask by +0.3, a requested size with slope 0.25 in its log."""
    texts = [PLAIN, ASKS["brief"], ASKS["detail"], ASKS["essay"], ASKS["one_sentence"]]
    base = _vectors(predictor, texts)
    vectors = base[np.arange(n) % len(texts)]
    x = cue_design(vectors)
    sources = np.where(np.arange(n) < n // 2, "a", "b")
    rng = np.random.default_rng(3)
    residual = (
        np.where(sources == "a", 0.8, -1.5)
        + brief_effect * x[:, 0]
        + 0.3 * x[:, 1]
        + 0.25 * x[:, 3]
        + rng.normal(0.0, 0.05, size=n)
    )
    return residual, vectors, sources


def test_fit_cue_term_learns_the_contrasts_within_sources(predictor):
    residual, vectors, sources = _synthetic(predictor, brief_effect=-0.6)
    brief, long, _, slope = fit_cue_term(residual, vectors, sources, np.ones(len(residual)))
    assert brief == pytest.approx(-0.6, abs=0.1)
    assert long == pytest.approx(0.3, abs=0.1)
    assert slope == pytest.approx(0.25, abs=0.05)


def test_fit_cue_term_keeps_the_directions(predictor):
    """Training rows where a brief ask comes with longer answers cannot turn the sign: the
    brief weight stops at 0, the others are still learned."""
    residual, vectors, sources = _synthetic(predictor, brief_effect=+0.6)
    brief, long, _, slope = fit_cue_term(residual, vectors, sources, np.ones(len(residual)))
    assert brief == 0.0
    assert long > 0 and slope > 0
    # too few requests with any ask: no term
    few = fit_cue_term(residual[:8], vectors[:8], sources[:8], np.ones(8))
    assert few == (0.0, 0.0, 0.0, 0.0)


def test_runtime_applies_the_artifacts_cue_term(artifact, tmp_path):
    artifact.save(tmp_path / "a")
    moved = load_artifact(tmp_path / "a")
    brief, long, level, slope = artifact.meta.cue_term
    moved.meta = moved.meta.model_copy(update={"cue_term": (brief - 0.5, long, level, slope)})
    plain, shifted = Predictor(artifact, store=None), Predictor(moved, store=None)
    a = plain.featurize(chat(ASKS["brief"])).features.base_log_p50
    b = shifted.featurize(chat(ASKS["brief"])).features.base_log_p50
    assert b - a == pytest.approx(-0.5, abs=1e-5)
    assert (
        plain.featurize(chat(PLAIN)).features.base_log_p50
        == shifted.featurize(chat(PLAIN)).features.base_log_p50
    )


def test_shipped_predictor_follows_length_asks(predictor):
    plain = _p50(predictor, PLAIN)
    assert _p50(predictor, ASKS["brief"]) < plain
    assert _p50(predictor, ASKS["one_sentence"]) < _p50(predictor, ASKS["brief"])
    assert _p50(predictor, ASKS["detail"]) > plain
    assert _p50(predictor, ASKS["essay"]) > _p50(predictor, ASKS["detail"])
