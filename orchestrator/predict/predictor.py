"""The token-budget predictor: load the artifact once, predict per request, learn per profile.

    predictor = Predictor.default()              # artifact + calibration store, loaded once
    pred = predictor.predict(body, profile)      # Prediction; raises PredictorInputError (400)
    ...request runs...
    predictor.observe(profile, pred, usage.completion_tokens, reasoning_tokens)

`predict` featurizes with the default (SmolLM2) tokenizer, which the model was trained with,
and counts `prompt_tokens` with the profile's own tokenizer when it has one. Output tokens are
predicted per choice as log-quantiles, shifted by the profile's calibration, capped by
max_tokens and the context room, then multiplied by `n`.

The calibration named `DEFAULT_CALIBRATION` ("default", what `predictor learn` without
`--profile` teaches) applies to predictions that name no profile, and is the starting point of
every profile that has no calibration of its own yet. A predictor built without an explicit
artifact follows the active one (`artifact.active_artifact_dir`): a refit written there is
loaded on the next refresh, without a restart.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.predict import lexical
from orchestrator.predict.artifact import (
    Artifact,
    ArtifactError,
    active_artifact_dir,
    artifact_stamp,
    feature_schema,
    load_artifact,
)
from orchestrator.predict.calibration import (
    CalibrationConfig,
    ProfileCalibration,
    observe,
    recalibrate_p90,
)
from orchestrator.predict.difficulty import DifficultyModel
from orchestrator.predict.features import (
    MODEL_INPUTS,
    TokenizedRequest,
    dense_features,
    request_phrase_ids,
    tokenize_request,
)
from orchestrator.predict.phrases import PHRASE_BUCKETS
from orchestrator.predict.request import ParsedRequest, PredictorInputError, parse_request
from orchestrator.predict.schema import Prediction, QueryClass, RequestFeatures
from orchestrator.predict.store import PredictorStore, TrafficRecord, default_store_path
from orchestrator.predict.tokenizer import (
    is_default_spec,
    load_default_tokenizer,
    load_tokenizer,
    tokenizer_spec,
)

if TYPE_CHECKING:
    from orchestrator.catalog.schema import Profile

log = logging.getLogger(__name__)

_NAME_STOPWORDS = {"meta", "instruct", "turbo", "chat", "it", "hf", "v0", "preview", "latest"}
_MAX_LOG = math.log1p(1_000_000)
DEFAULT_CALIBRATION = "default"  # predictions naming no profile; start of a new profile


def normalize_model_name(name: str) -> str:
    """'Meta-Llama-3.1-8B-Instruct-Turbo' and 'llama-3.1-8b-instruct' -> 'llama318b'."""
    tail = name.rsplit("/", 1)[-1].lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", tail) if p and p not in _NAME_STOPWORDS]
    return "".join(parts)


@dataclass(frozen=True)
class _Featurized:
    parsed: ParsedRequest
    features: RequestFeatures
    prompt_tokens_exact: bool
    tier_success: dict[str, float] | None = None


@dataclass(frozen=True)
class _Model:
    """One loaded artifact and what is read from it per request (swapped whole on reload)."""

    artifact: Artifact
    b50: Any
    b90: Any
    breason: Any
    known: dict[str, Any]
    stamp: tuple[str, int, int] | None  # where it was loaded from (followed artifacts only)

    @classmethod
    def of(cls, artifact: Artifact, stamp: tuple[str, int, int] | None) -> _Model:
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


class Predictor:
    """Loads the artifact once; `predict` costs a tokenization plus three small tree ensembles.

    Thread-safe. With a `store`, per-profile calibrations persist and every `observe` also
    records the request's features for `orchestrator predictor train --from-traffic`. Without
    an explicit `artifact` it follows the active one: every `refresh_seconds` it checks
    whether a refit replaced it and loads the new one (`reload_artifact` checks at once).
    """

    def __init__(
        self,
        artifact: Artifact | Path | str | None = None,
        store: PredictorStore | None = None,
        *,
        calibration: CalibrationConfig | None = None,
        record_traffic: bool = True,
        refresh_seconds: float = 30.0,
        state: Path | str | None = None,
        difficulty: DifficultyModel | None = None,
    ) -> None:
        """`state`: the state dir whose refit a followed artifact is (default: `paths`')."""
        self._follow = artifact is None
        self._state = state
        if isinstance(artifact, Artifact):
            self._model = _Model.of(artifact, None)
        elif artifact is None:
            self._model = _load_followed(state)
        else:
            self._model = _Model.of(load_artifact(Path(artifact)), None)
        self.calibration_config = calibration or CalibrationConfig()
        self.store = store
        self.record_traffic = record_traffic
        self.refresh_seconds = refresh_seconds
        self._tokenizer = load_default_tokenizer()
        self.difficulty = difficulty or DifficultyModel.default()
        self._lock = threading.Lock()
        self._calibrations: dict[str, ProfileCalibration] = {}
        self._loaded_at = 0.0
        self._schema = feature_schema(MODEL_INPUTS)
        self._refresh(force=True)

    @property
    def artifact(self) -> Artifact:
        return self._model.artifact

    @property
    def meta(self) -> Any:
        return self._model.artifact.meta

    @property
    def settings(self) -> Any:
        return self._model.artifact.meta.settings

    @property
    def feature_schema(self) -> str:
        """Fingerprint of the feature layout this predictor records traffic under."""
        return self._schema

    @classmethod
    def default(cls, state: Path | str | None = None) -> Predictor:
        """The process-wide predictor of a state dir (`paths.state_dir(state)`, passed by a
        server that has its own): the active artifact there (followed) + its calibration
        store (one per store path, so a changed state dir gets its own)."""
        store_path = default_store_path(state)
        return _default_predictor(str(store_path), None if state is None else str(state))

    def reload_artifact(self) -> bool:
        """Load the active artifact now if a refit replaced it (a predictor that follows it);
        True when it changed. A refit that cannot be loaded is logged and skipped."""
        if not self._follow:
            return False
        stamp = artifact_stamp(active_artifact_dir(self._state))
        if stamp == self._model.stamp:
            return False
        try:
            model = _load_followed(self._state)
        except (ArtifactError, ValueError, OSError) as exc:
            log.warning("predictor artifact not reloaded: %s", exc)
            return False
        self._model = model  # one reference swap: a request in flight keeps the old model
        log.info("predictor artifact reloaded from %s", model.stamp[0] if model.stamp else "?")
        return True

    # -- featurization -----------------------------------------------------------------------
    def model_input(
        self, parsed: ParsedRequest, tok: TokenizedRequest
    ) -> tuple[np.ndarray, np.ndarray]:
        """The boosters' input row (1 x MODEL_INPUTS, float32: the dense features, then the
        lexical and phrase ridge scores) and the phrase slots the phrase ridge read."""
        return self._model_input(parsed, tok, self._model)

    def _model_input(
        self, parsed: ParsedRequest, tok: TokenizedRequest, model: _Model
    ) -> tuple[np.ndarray, np.ndarray]:
        dense = dense_features(parsed, tok)
        phrases = request_phrase_ids(parsed)
        return self.row_from_parts(dense, tok.lexical_ids, phrases, model), phrases

    def base_quantiles(
        self, row: np.ndarray, lexical_ids: np.ndarray, model: _Model | None = None
    ) -> tuple[float, float]:
        """Profile-free calibrated log1p (p50, p90) of one booster input row (1 x inputs) and
        the request's lexical token ids (the token-embedding ridge reads them)."""
        m = model or self._model
        meta = m.artifact.meta
        extra = m.artifact.embedding_term(lexical_ids)
        q50 = float(m.b50.predict(row, num_threads=1)[0]) + extra + meta.p50_shift
        q50 = min(max(q50, 0.0), _MAX_LOG)
        q90 = float(m.b90.predict(row, num_threads=1)[0]) + extra + meta.p90_shift_for(q50)
        return q50, min(max(q90, q50), _MAX_LOG)

    def row_from_parts(
        self,
        vector: np.ndarray,
        lexical_ids: np.ndarray,
        phrase_ids: np.ndarray,
        model: _Model | None = None,
    ) -> np.ndarray:
        """The booster input row from stored parts (a traffic record: no text needed)."""
        art = (model or self._model).artifact
        row = np.empty((1, len(MODEL_INPUTS)), dtype=np.float32)
        row[0, :-2] = vector
        row[0, -2] = lexical.score(lexical_ids, art.lexical_weights, art.meta.lexical_intercept)
        row[0, -1] = lexical.score(phrase_ids, art.phrase_weights, art.meta.phrase_intercept)
        return row

    def featurize(self, request: dict[str, Any] | ParsedRequest) -> _Featurized:
        """Parse (unless given parsed), tokenize (default tokenizer) and run the profile-free
        models once."""
        parsed = request if isinstance(request, ParsedRequest) else parse_request(request)
        tok = tokenize_request(parsed, self._tokenizer)
        self._refresh()
        model = self._model  # one artifact for the whole request, even across a reload
        row, phrases = self._model_input(parsed, tok, model)
        q50, q90 = self.base_quantiles(row, tok.lexical_ids, model)
        prob = float(model.breason.predict(row, num_threads=1)[0])
        features = RequestFeatures.model_construct(  # trusted values: skip validation (latency)
            vector=tuple(row[0, :-2].tolist()),
            lexical_ids=tuple(tok.lexical_ids.tolist()),
            lexical_score=float(row[0, -2]),
            phrase_ids=tuple(phrases.tolist()),
            phrase_score=float(row[0, -1]),
            default_prompt_tokens=tok.prompt_tokens,
            base_log_p50=q50,
            base_log_p90=q90,
            reasoning_probability=min(1.0, max(0.0, prob)),
        )
        return _Featurized(parsed, features, tok.exact, self.difficulty.tier_success(parsed))

    # -- prediction --------------------------------------------------------------------------
    def predict(
        self,
        request: dict[str, Any],
        profile: Profile | None = None,
        *,
        calibration: str | None = None,
    ) -> Prediction:
        """Prediction for one request body on `profile` (None: the "default" calibration,
        i.e. what `predictor learn` without `--profile` taught, else an average model).

        `calibration` names the calibration to apply when it differs from the profile's name
        (evaluation uses the answering model's name; default: the profile's).
        """
        return self.predict_featurized(self.featurize(request), profile, calibration=calibration)

    def predict_many(
        self, request: dict[str, Any] | ParsedRequest, profiles: list[Profile]
    ) -> dict[str, Prediction]:
        """One featurization, a Prediction per candidate profile (keyed by profile name)."""
        done = self.featurize(request)
        return {p.name: self.predict_featurized(done, p) for p in profiles}

    def predict_featurized(
        self,
        done: _Featurized,
        profile: Profile | None = None,
        *,
        calibration: str | None = None,
    ) -> Prediction:
        parsed, f = done.parsed, done.features
        prompt_tokens, exact = f.default_prompt_tokens, done.prompt_tokens_exact
        spec = tokenizer_spec(profile)
        if profile is not None and not is_default_spec(spec):
            tok = load_tokenizer(spec)
            if tok is not self._tokenizer:
                counted = tokenize_request(parsed, tok)
                prompt_tokens, exact = counted.prompt_tokens, counted.exact

        key: Profile | str = calibration or profile or DEFAULT_CALIBRATION
        cal = self.calibration_for(key)
        offset = cal.log_offset(self.calibration_config)
        l50 = f.base_log_p50 + offset
        l90 = max(f.base_log_p90 + offset + cal.p90_shift, l50)
        per50 = max(1, round(math.expm1(min(l50, _MAX_LOG))))
        per90 = max(per50, round(math.expm1(min(l90, _MAX_LOG))))

        ratio_log = cal.reasoning_log_ratio(self.calibration_config)
        think = math.expm1(min(l50 + ratio_log, _MAX_LOG))
        if parsed.reasoning_effort is not None:
            think *= self.settings.effort_multiplier.get(parsed.reasoning_effort, 1.0)
        if parsed.reasoning_requested is False or (
            profile is not None and not profile.reasoning.supported
        ):
            think = 0.0

        cap = parsed.max_tokens
        if profile is not None:
            room = max(0, profile.max_model_len - prompt_tokens)
            cap = room if cap is None else min(cap, room)
        capped = cap is not None and per90 > cap
        if cap is not None:
            per50, per90, think = min(per50, cap), min(per90, cap), min(think, cap)

        prob = f.reasoning_probability
        return Prediction(
            prompt_tokens=prompt_tokens,
            prompt_tokens_exact=exact,
            p50_tokens=per50 * parsed.n,
            p90_tokens=per90 * parsed.n,
            reasoning_probability=prob,
            reasoning_tokens=round(think) * parsed.n,
            query_class=self._classify(prompt_tokens, per50, prob, profile),
            n=parsed.n,
            max_tokens=cap,
            capped=capped,
            reasoning_requested=parsed.reasoning_requested,
            profile=profile.name if profile is not None else None,
            tier_success=done.tier_success,
            features=f,
        )

    def _classify(
        self, prompt_tokens: int, p50: int, prob: float, profile: Profile | None
    ) -> QueryClass:
        s = self.settings
        threshold = s.long_context_tokens
        if profile is not None:
            threshold = min(threshold, int(s.long_context_fraction * profile.max_model_len))
        if prompt_tokens >= threshold:
            return "long_context"
        if prob >= s.reasoning_threshold:
            return "reasoning"
        if p50 >= s.long_form_tokens:
            return "long_form"
        return "standard"

    # -- calibration -------------------------------------------------------------------------
    def prior_for(self, profile: Profile | str) -> ProfileCalibration:
        """The starting calibration: the learned "default" calibration when there is one (a
        workload taught by `predictor learn` without `--profile`), else a training model's
        factor when the family matches, else none."""
        name = profile if isinstance(profile, str) else profile.name
        if name != DEFAULT_CALIBRATION:
            with self._lock:
                learned = self._calibrations.get(DEFAULT_CALIBRATION)
            if learned is not None:
                return learned
        return self.family_prior(profile)

    def family_prior(self, profile: Profile | str) -> ProfileCalibration:
        """A training model's factor when the profile's family matches, else none."""
        names = (
            [profile] if isinstance(profile, str) else [profile.served_model_name, profile.model]
        )
        for name in names:
            known = self._model.known.get(normalize_model_name(name))
            if known is not None:
                return ProfileCalibration(
                    prior_offset=known.log_offset,
                    p90_shift=known.p90_shift,
                    prior_reasoning_log_ratio=math.log(self.settings.reasoning_prior_ratio),
                )
        return ProfileCalibration(
            prior_reasoning_log_ratio=math.log(self.settings.reasoning_prior_ratio)
        )

    def calibration_for(self, profile: Profile | str) -> ProfileCalibration:
        """The profile's current calibration (learned, else its prior)."""
        name = profile if isinstance(profile, str) else profile.name
        self._refresh()
        with self._lock:
            cal = self._calibrations.get(name)
        return cal if cal is not None else self.prior_for(profile)

    def log_offset(self, profile: Profile | str) -> float:
        """The profile's current log length factor (what `observe` moves)."""
        return self.calibration_for(profile).log_offset(self.calibration_config)

    def observe(
        self,
        profile: Profile | str,
        prediction: Prediction | RequestFeatures | dict[str, Any],
        output_tokens: int,
        reasoning_tokens: int = 0,
    ) -> ProfileCalibration:
        """Learn from one finished request: update and persist the profile's calibration, and
        record the request's features and actual tokens as a traffic row.

        `prediction` is what `predict` returned for this request (or its `.features`, or the
        request body itself, which is then featurized again). `output_tokens` is the total
        completion tokens over all choices (thinking tokens excluded when reported apart).
        """
        if (
            isinstance(output_tokens, bool)
            or not isinstance(output_tokens, int)
            or output_tokens < 0
        ):
            raise ValueError(f"output_tokens must be an integer >= 0, got {output_tokens!r}")
        if not isinstance(reasoning_tokens, int) or reasoning_tokens < 0:
            raise ValueError(f"reasoning_tokens must be an integer >= 0, got {reasoning_tokens!r}")
        n = 1
        if isinstance(prediction, Prediction):
            n = prediction.n
            features = prediction.features
            if features is None:
                raise ValueError("this Prediction carries no features (was it deserialized?)")
        elif isinstance(prediction, RequestFeatures):
            features = prediction
        else:
            done = self.featurize(prediction)
            features, n = done.features, done.parsed.n
        name = profile if isinstance(profile, str) else profile.name
        initial = self.prior_for(profile)
        per_out, per_think = output_tokens // n, reasoning_tokens // n

        def step(cal: ProfileCalibration) -> ProfileCalibration:
            return observe(
                cal,
                features.base_log_p50,
                features.base_log_p90,
                per_out,
                per_think,
                self.calibration_config,
            )

        if self.store is not None:
            new = self.store.update_calibration(name, initial, step)
        else:
            with self._lock:
                new = step(self._calibrations.get(name, initial))
        with self._lock:
            self._calibrations[name] = new
        if self.store is not None and self.record_traffic:
            pred = prediction if isinstance(prediction, Prediction) else None
            self.store.add_record(
                TrafficRecord(
                    profile=name,
                    feature_schema=self._schema,
                    features=np.asarray(features.vector, dtype=np.float32),
                    lexical_ids=np.asarray(features.lexical_ids, dtype=np.int32),
                    phrase_ids=np.asarray(features.phrase_ids, dtype=np.int32),
                    prompt_tokens=features.default_prompt_tokens,
                    predicted_p50=pred.p50_tokens if pred else 0,
                    predicted_p90=pred.p90_tokens if pred else 0,
                    output_tokens=per_out,
                    reasoning_tokens=per_think,
                )
            )
        return new

    def observe_batch(
        self,
        items: list[tuple[Profile | str, RequestFeatures, int, int]],
    ) -> dict[str, ProfileCalibration]:
        """Learn from many finished requests at once, all or nothing: (profile, features,
        output tokens per choice, thinking tokens per choice), in order. With a store: one
        transaction (calibrations and traffic records); without: in memory only.

        Each profile's p90 shift is then set by split conformal prediction on its lines of
        this batch (`calibration.recalibrate_p90`: 90% of them at or below p90), so coverage
        is right at once instead of after the adaptive steps have converged."""
        batch = []
        lines: dict[str, list[tuple[float, int]]] = {}
        for profile, features, output_tokens, reasoning_tokens in items:
            name = profile if isinstance(profile, str) else profile.name
            lines.setdefault(name, []).append((features.base_log_p90, output_tokens))

            def step(
                cal: ProfileCalibration,
                f: RequestFeatures = features,
                out: int = output_tokens,
                think: int = reasoning_tokens,
            ) -> ProfileCalibration:
                return observe(
                    cal, f.base_log_p50, f.base_log_p90, out, think, self.calibration_config
                )

            record = TrafficRecord(
                profile=name,
                feature_schema=self._schema,
                features=np.asarray(features.vector, dtype=np.float32),
                lexical_ids=np.asarray(features.lexical_ids, dtype=np.int32),
                phrase_ids=np.asarray(features.phrase_ids, dtype=np.int32),
                prompt_tokens=features.default_prompt_tokens,
                predicted_p50=max(1, round(math.expm1(features.base_log_p50))),
                predicted_p90=max(1, round(math.expm1(features.base_log_p90))),
                output_tokens=output_tokens,
                reasoning_tokens=reasoning_tokens,
            )
            batch.append((record, self.prior_for(profile), step))

        def finish(name: str, cal: ProfileCalibration) -> ProfileCalibration:
            base90, actual = zip(*lines[name], strict=True)
            return recalibrate_p90(cal, base90, actual, self.calibration_config)

        if self.store is not None:
            states = self.store.learn_batch(batch, finish)
        else:
            states = {}
            with self._lock:
                for record, initial, step in batch:
                    current = states.get(record.profile) or self._calibrations.get(
                        record.profile, initial
                    )
                    states[record.profile] = step(current)
            states = {name: finish(name, cal) for name, cal in states.items()}
        with self._lock:
            self._calibrations.update(states)
        return states

    def _refresh(self, force: bool = False) -> None:
        """Re-read calibrations other processes wrote, and reload a replaced artifact, at most
        every refresh_seconds."""
        now = time.monotonic()
        if not force and now - self._loaded_at < self.refresh_seconds:
            return
        self._loaded_at = now
        if not force:
            self.reload_artifact()
        if self.store is None:
            return
        loaded = self.store.load_calibrations()
        with self._lock:
            self._calibrations.update(loaded)

    def refresh(self) -> None:
        """Re-read calibrations and reload a replaced artifact now."""
        self.reload_artifact()
        self._refresh(force=True)


def _load_followed(state: Path | str | None = None) -> _Model:
    """The active artifact (a refit in `paths.state_dir(state)`, else the shipped one) with
    the stamp it was read at."""
    folder = active_artifact_dir(state)
    stamp = artifact_stamp(folder)
    return _Model.of(load_artifact(None, state=state), stamp)


def _as_path(value: Path | str | None) -> Path | None:
    return Path(value) if value is not None else None


@lru_cache(maxsize=4)
def _default_predictor(store_path: str, state: str | None) -> Predictor:
    return Predictor(store=PredictorStore(store_path), state=state)


def predict(request: dict[str, Any], profile: Profile | None = None) -> Prediction:
    """Predict with the process-wide default predictor (see `Predictor.predict`)."""
    return Predictor.default().predict(request, profile)


__all__ = [
    "DEFAULT_CALIBRATION",
    "Predictor",
    "PredictorInputError",
    "normalize_model_name",
    "predict",
]
