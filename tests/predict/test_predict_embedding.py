"""The token-embedding ridge: fitted on dense request embeddings, scored at run time as one
weight per token id (the fold is exact), shipped in the artifact and blended into both
quantiles."""

from __future__ import annotations

import numpy as np
import pytest
from predict_helpers import chat

from orchestrator.predict import Predictor, lexical
from orchestrator.predict.artifact import load_artifact
from orchestrator.predict.offline.embedding import fit_dense_ridge, request_embeddings


def test_dense_ridge_folds_into_token_weights():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(50, 6)).astype(np.float32)
    id_sets = [rng.choice(50, size=rng.integers(1, 12), replace=False) for _ in range(40)]
    x = request_embeddings(id_sets, matrix)
    y = rng.normal(size=40)
    beta, b = fit_dense_ridge(x, y, np.ones(40), damp=0.1)
    folded = (matrix @ beta).astype(np.float32)
    for ids, row in zip(id_sets, x, strict=True):
        assert lexical.score(ids, folded, b) == pytest.approx(float(row @ beta + b), abs=1e-4)


def test_dense_ridge_recovers_a_linear_target():
    """Its intercept is the target's weighted mean (the rows are not centred): exact for
    centred rows."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 5))
    x -= x.mean(axis=0)
    beta_true = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    beta, b = fit_dense_ridge(x, x @ beta_true + 4.0, np.ones(400), damp=1e-6)
    assert np.allclose(beta, beta_true, atol=1e-3) and b == pytest.approx(4.0, abs=0.05)


def test_shipped_artifact_blends_the_embedding_ridge(artifact, tmp_path):
    assert artifact.meta.embedding_blend > 0
    assert len(artifact.embedding_weights) == artifact.meta.vocab_size
    body = chat("Write a detailed essay on the history of the printing press.")
    with_blend = Predictor(artifact, store=None).featurize(body).features
    ids = np.asarray(with_blend.lexical_ids, dtype=np.int32)
    term = artifact.embedding_term(ids, np.asarray(with_blend.vector))
    assert term != 0.0
    # the same artifact without the blend (as written before it existed) loads and differs
    # by exactly that term in p50
    artifact.save(tmp_path / "a")
    old = load_artifact(tmp_path / "a")
    old.meta = old.meta.model_copy(
        update={
            "embedding_blend": 0.0,
            "chat_blend": None,
            "math_term": (0.0, 0.0),
            "cue_term": (0.0, 0.0, 0.0, 0.0),
        }
    )
    without = Predictor(old, store=None).featurize(body).features
    assert with_blend.base_log_p50 - without.base_log_p50 == pytest.approx(term, abs=1e-6)
