"""One loaded predictor artifact, and what is computed from it per request: the boosters' input
row and the profile-free quantiles.

Invariants: a `LoadedModel` is immutable and swapped whole on reload, so a request that took
one keeps it to the end, even across a refit; it refuses (`ArtifactError`) an artifact trained
on another feature layout or phrase hashing; its quantiles are log1p token counts in
[0, MAX_LOG] with p90 >= p50.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.predict import lexical
from orchestrator.predict.artifact import (
    Artifact,
    ArtifactError,
    active_artifact_dir,
    artifact_stamp,
    load_artifact,
)
from orchestrator.predict.features import MODEL_INPUTS
from orchestrator.predict.phrases import PHRASE_BUCKETS
from orchestrator.predict.single_row import SingleRowPredictor

MAX_LOG = math.log1p(1_000_000)  # log1p of the longest answer predicted (tokens)
_NAME_STOPWORDS = {"meta", "instruct", "turbo", "chat", "it", "hf", "v0", "preview", "latest"}

Stamp = tuple[str, int, int]  # where a followed artifact was read from, and when


def normalize_model_name(name: str) -> str:
    """'Meta-Llama-3.1-8B-Instruct-Turbo' and 'llama-3.1-8b-instruct' -> 'llama318b'."""
    tail = name.rsplit("/", 1)[-1].lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", tail) if p and p not in _NAME_STOPWORDS]
    return "".join(parts)


@dataclass(frozen=True)
class LoadedModel:
    """One loaded artifact and its three boosters (answer p50, p90, reasoning)."""

    artifact: Artifact
    b50: Any
    b90: Any
    breason: Any
    known: dict[str, Any]  # training models' priors by normalized name
    stamp: Stamp | None  # where it was loaded from (followed artifacts only)
    # the three boosters' one-row predictions without `Booster.predict`'s per-call set-up
    _one: tuple[SingleRowPredictor, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        one = tuple(SingleRowPredictor(b) for b in (self.b50, self.b90, self.breason))
        object.__setattr__(self, "_one", one)

    @classmethod
    def of(cls, artifact: Artifact, stamp: Stamp | None) -> LoadedModel:
        meta = artifact.meta
        if tuple(meta.feature_names) != MODEL_INPUTS:
            raise ArtifactError("artifact was trained on another feature layout; retrain it")
        if meta.phrase_buckets != PHRASE_BUCKETS:
            raise ArtifactError("artifact was trained with another phrase hashing; retrain it")
        return cls(
            artifact,
            artifact.boosters["p50"],
            artifact.boosters["p90"],
            artifact.boosters["reasoning"],
            {normalize_model_name(k): v for k, v in meta.known_models.items()},
            stamp,
        )

    def row_from_parts(
        self, vector: np.ndarray, lexical_ids: np.ndarray, phrase_ids: np.ndarray
    ) -> np.ndarray:
        """The booster input row (1 x MODEL_INPUTS, float32): the dense features, then the
        lexical and phrase ridge scores."""
        art = self.artifact
        row = np.empty((1, len(MODEL_INPUTS)), dtype=np.float32)
        row[0, :-2] = vector
        row[0, -2] = lexical.score(lexical_ids, art.lexical_weights, art.meta.lexical_intercept)
        row[0, -1] = lexical.score(phrase_ids, art.phrase_weights, art.meta.phrase_intercept)
        return row

    def base_quantiles(self, row: np.ndarray, lexical_ids: np.ndarray) -> tuple[float, float]:
        """Profile-free calibrated log1p (p50, p90) of one input row and the request's lexical
        token ids (the token-embedding ridge reads them)."""
        meta = self.artifact.meta
        extra = self.artifact.embedding_term(lexical_ids, row[0, :-2])
        p50, p90, _ = self._one
        q50 = p50(row) + extra + meta.p50_shift
        q50 = min(max(q50, 0.0), MAX_LOG)
        q90 = p90(row) + extra + meta.p90_shift_for(q50)
        return q50, min(max(q90, q50), MAX_LOG)

    def reasoning_probability(self, row: np.ndarray) -> float:
        """The probability that the answer reasons ("thinks"), in [0, 1]."""
        return min(1.0, max(0.0, self._one[2](row)))


def load_followed(state: Path | str | None = None) -> LoadedModel:
    """The active artifact (a refit in `paths.state_dir(state)`, else the shipped one) with
    the stamp it was read at."""
    stamp = artifact_stamp(active_artifact_dir(state))
    return LoadedModel.of(load_artifact(None, state=state), stamp)
