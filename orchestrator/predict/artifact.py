"""The trained predictor on disk: a folder of LightGBM text models, lexical weights and meta.json.

The shipped artifact lives in `orchestrator/predict/artifacts/default/` so `serve` needs no
training and no data at start. `orchestrator predictor train` rebuilds it deterministically.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator import paths
from orchestrator.predict import lexical
from orchestrator.predict.prompt_type import PromptTerms
from orchestrator.predict.schema import PredictorSettings

ARTIFACT_FORMAT = 3  # 2: phrase ridge added; 3: task features, per-class p90 shifts
DEFAULT_ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts" / "default"
BOOSTERS = ("p50", "p90", "reasoning", "buckets")
log = logging.getLogger(__name__)


def feature_schema(names: tuple[str, ...] | list[str]) -> str:
    """A short fingerprint of a feature order; traffic rows and artifacts must agree on it."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


class KnownModel(BaseModel):
    """A training-data answering model's length factor, the prior for a matching profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_offset: float
    p90_shift: float = 0.0
    rows: int = Field(0, ge=0)


class BaselineParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    constant_log_p50: float
    constant_log_p90: float
    length_coef: tuple[float, float]  # log1p(out) ~ a + b * log1p(prompt tokens)
    length_p50_resid: float
    length_p90_resid: float
    bucket_edges: tuple[int, ...]  # 4 inner edges in tokens: 5 buckets
    bucket_log_p50: tuple[float, ...]
    bucket_log_p90: tuple[float, ...]


class ArtifactMeta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = ARTIFACT_FORMAT
    feature_names: tuple[str, ...]
    feature_schema: str
    vocab_size: int
    lexical_intercept: float
    phrase_buckets: int
    phrase_intercept: float
    # token-embedding ridge (one weight per token id in lexical.npz): blend * its score is
    # added to both log quantiles; 0 in artifacts written before it existed
    embedding_intercept: float = 0.0
    embedding_blend: float = 0.0
    # by prompt type (`prompt_type.PromptTerms`): the embedding blend weight of requests that
    # are not maths word problems (None: `embedding_blend` for all), and each type's
    # (intercept, slope) on its length feature; absent in older artifacts
    chat_blend: float | None = None
    math_term: tuple[float, float] = (0.0, 0.0)
    pasted_term: tuple[float, float] = (0.0, 0.0)
    cue_term: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # explicit length asks
    p50_shift: float = 0.0  # conformal correction of the p50 booster (log units)
    p90_shift: float = 0.0  # conformal correction of the p90 booster (log units)
    # per predicted-length class (Mondrian CQR): class k holds shifted log p50 between
    # edges[k-1] and edges[k]; its p90 shift replaces p90_shift. Invariant: one more shift
    # than edges (or both empty).
    p90_class_edges: tuple[float, ...] = ()
    p90_class_shifts: tuple[float, ...] = ()
    known_models: dict[str, KnownModel] = Field(default_factory=dict)
    settings: PredictorSettings = PredictorSettings()
    baselines: BaselineParams
    training: dict[str, object] = Field(default_factory=dict)
    heldout: dict[str, object] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _classes_match(self) -> ArtifactMeta:
        edges, shifts = self.p90_class_edges, self.p90_class_shifts
        if (edges or shifts) and len(shifts) != len(edges) + 1:
            raise ValueError("p90_class_shifts must have one more entry than p90_class_edges")
        if list(edges) != sorted(edges):
            raise ValueError("p90_class_edges must be sorted")
        return self

    def p90_shift_for(self, log_p50: float) -> float:
        """The conformal p90 shift of the class a (shifted) log p50 falls in."""
        if not self.p90_class_shifts:
            return self.p90_shift
        return self.p90_class_shifts[bisect.bisect_right(self.p90_class_edges, log_p50)]


@dataclass
class Artifact:
    meta: ArtifactMeta
    boosters: dict[str, lgb.Booster]
    lexical_weights: np.ndarray  # float32, one per token id
    phrase_weights: np.ndarray  # float32, one per phrase slot
    embedding_weights: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    @property
    def prompt_terms(self) -> PromptTerms:
        meta = self.meta
        blend = meta.embedding_blend if len(self.embedding_weights) else 0.0
        return PromptTerms(
            blend,
            meta.embedding_intercept,
            meta.chat_blend,
            meta.math_term,
            meta.pasted_term,
            meta.cue_term,
        )

    def embedding_term(self, lexical_ids: np.ndarray, vector: np.ndarray | None = None) -> float:
        """What the token-embedding ridge (and, given the request's dense features, the
        prompt-type terms) add to both log quantiles of one request."""
        terms = self.prompt_terms
        score = 0.0
        if terms.blend or terms.chat_blend is not None:
            score = lexical.score(lexical_ids, self.embedding_weights, terms.intercept)
        if vector is None or not terms.typed:
            return terms.blend * score
        return terms.add_one(vector, score)  # `add` of one row, as floats

    def save(self, folder: Path) -> None:
        """Write every file under a temporary name and move it in place, meta.json last: a
        predictor that follows this folder reloads on meta.json's change and then reads
        complete files of the new artifact."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, booster in self.boosters.items():
            tmp = folder / f".{name}.lgb.tmp"
            booster.save_model(str(tmp))
            os.replace(tmp, folder / f"{name}.lgb")
        tmp = folder / ".lexical.tmp.npz"
        np.savez_compressed(
            tmp,
            weights=self.lexical_weights.astype(np.float32),
            phrase_weights=self.phrase_weights.astype(np.float32),
            embedding_weights=self.embedding_weights.astype(np.float32),
        )
        os.replace(tmp, folder / "lexical.npz")
        self.save_meta(folder)

    def save_meta(self, folder: Path) -> None:
        text = json.dumps(self.meta.model_dump(mode="json"), indent=1, sort_keys=True)
        tmp = folder / ".meta.json.tmp"
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, folder / "meta.json")


def traffic_artifact_dir(state: Path | str | None = None) -> Path:
    """Where `predictor train --from-traffic` writes its refit (under `paths.state_dir(state)`)."""
    return paths.state_dir(state) / "predictor" / "artifact"


def active_artifact_dir(state: Path | str | None = None) -> Path:
    """The refit from traffic (in `state`'s state dir) when one exists, else the shipped one."""
    refit = traffic_artifact_dir(state)
    return refit if (refit / "meta.json").is_file() else DEFAULT_ARTIFACT_DIR


def artifact_stamp(folder: Path) -> tuple[str, int, int] | None:
    """What identifies the artifact in `folder` as written: (folder, meta.json mtime in ns,
    size); None without one. Saving writes meta.json last, so a new stamp means a whole new
    artifact is in place."""
    try:
        st = (folder / "meta.json").stat()
    except OSError:
        return None
    return (str(folder), st.st_mtime_ns, st.st_size)


class ArtifactError(RuntimeError):
    """The artifact folder is missing, incomplete, or from another feature layout."""


def load_artifact(folder: Path | None = None, *, state: Path | str | None = None) -> Artifact:
    """The artifact in `folder`; by default the traffic refit (in `state`'s state dir), else
    the shipped one.

    A default-chosen refit that cannot be loaded (e.g. written by an older version) is
    skipped with a warning: the server starts on the shipped artifact instead of failing."""
    if folder is None:
        chosen = active_artifact_dir(state)
        if chosen != DEFAULT_ARTIFACT_DIR:
            try:
                return _load(chosen)
            except (ArtifactError, ValueError, OSError) as exc:
                log.warning(
                    "ignoring the predictor refit in %s (%s); using the shipped one", chosen, exc
                )
        return _load(DEFAULT_ARTIFACT_DIR)
    return _load(Path(folder))


def _load(folder: Path) -> Artifact:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise ArtifactError(
            f"no predictor artifact in {folder}; run `orchestrator predictor train`"
        )
    raw = json.loads(meta_path.read_text(encoding="utf-8"))
    if raw.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(
            f"artifact {folder} has format {raw.get('format')}, this version reads "
            f"{ARTIFACT_FORMAT}; retrain it with `orchestrator predictor train`"
        )
    meta = ArtifactMeta.model_validate(raw)
    boosters = {}
    for name in BOOSTERS:
        path = folder / f"{name}.lgb"
        if not path.is_file():
            raise ArtifactError(f"artifact {folder} lacks {path.name}")
        boosters[name] = lgb.Booster(model_file=str(path))
    with np.load(folder / "lexical.npz") as npz:
        weights = npz["weights"].astype(np.float32)
        phrases = npz["phrase_weights"].astype(np.float32)
        embedding = (
            npz["embedding_weights"].astype(np.float32)
            if "embedding_weights" in npz.files
            else np.zeros(0, dtype=np.float32)
        )
    if meta.embedding_blend and len(embedding) != meta.vocab_size:
        raise ArtifactError(f"artifact {folder}: embedding weights do not match its vocabulary")
    return Artifact(
        meta=meta,
        boosters=boosters,
        lexical_weights=weights,
        phrase_weights=phrases,
        embedding_weights=embedding,
    )
