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

Parts: the loaded artifact and its per-request maths (`loaded_model.py`), the per-profile
calibrations and how finished requests move them (`calibration_book.py`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.predict.artifact import (
    Artifact,
    ArtifactError,
    active_artifact_dir,
    artifact_stamp,
    feature_schema,
    load_artifact,
)
from orchestrator.predict.calibration import CalibrationConfig, ProfileCalibration
from orchestrator.predict.calibration_book import (
    DEFAULT_CALIBRATION,
    CalibrationBook,
    check_counts,
)
from orchestrator.predict.difficulty import DifficultyModel
from orchestrator.predict.features import (
    MODEL_INPUTS,
    TokenizedRequest,
    dense_features,
    request_phrase_ids,
    tokenize_request,
)
from orchestrator.predict.featurize_memo import FeaturizeMemo
from orchestrator.predict.loaded_model import (
    MAX_LOG,
    LoadedModel,
    load_followed,
    normalize_model_name,
)
from orchestrator.predict.request import ParsedRequest, PredictorInputError, parse_request
from orchestrator.predict.schema import Prediction, QueryClass, RequestFeatures
from orchestrator.predict.store import PredictorStore, default_store_path
from orchestrator.predict.tokenizer import (
    is_default_spec,
    load_default_tokenizer,
    load_tokenizer,
    tokenizer_spec,
)

if TYPE_CHECKING:
    from orchestrator.catalog.schema import Profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Featurized:
    parsed: ParsedRequest
    features: RequestFeatures
    prompt_tokens_exact: bool
    tier_success: dict[str, float] | None = None


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
        memo: FeaturizeMemo | None = None,
    ) -> None:
        """`state`: the state dir whose refit a followed artifact is (default: `paths`').
        `memo`: where featurizations of a recurring request text are kept (default: 1,024
        entries; `FeaturizeMemo(0)` featurizes every time)."""
        self._follow = artifact is None
        self._state = state
        if isinstance(artifact, Artifact):
            self._model = LoadedModel.of(artifact, None)
        elif artifact is None:
            self._model = load_followed(state)
        else:
            self._model = LoadedModel.of(load_artifact(Path(artifact)), None)
        self.calibration_config = calibration or CalibrationConfig()
        self.store = store
        self.record_traffic = record_traffic
        self.refresh_seconds = refresh_seconds
        self._tokenizer = load_default_tokenizer()
        self.difficulty = difficulty or DifficultyModel.default()
        self.memo = memo if memo is not None else FeaturizeMemo()
        self._loaded_at = 0.0
        self._schema = feature_schema(MODEL_INPUTS)
        self.calibrations = CalibrationBook(
            lambda: self._model,
            self.calibration_config,
            store,
            record_traffic,
            self._schema,
        )
        self._refresh(force=True)

    def fork(self) -> Predictor:
        """A predictor that learns apart from this one: the same loaded model, difficulty model
        and featurize memo; its calibrations start as a copy of this one's in-memory ones; no
        store, no following of refits. What a replay teaches stays in the fork, so one
        predictor shared by several replays gives each the same start (`simulate.prepare`)."""
        twin = copy.copy(self)
        twin._follow = False
        twin.store = None
        twin.calibrations = CalibrationBook(
            lambda: twin._model, self.calibration_config, None, False, self._schema
        )
        twin.calibrations.adopt(self.calibrations)
        return twin

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
            model = load_followed(self._state)
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
        self, parsed: ParsedRequest, tok: TokenizedRequest, model: LoadedModel
    ) -> tuple[np.ndarray, np.ndarray]:
        dense = dense_features(parsed, tok)
        phrases = request_phrase_ids(parsed)
        return self.row_from_parts(dense, tok.lexical_ids, phrases, model), phrases

    def base_quantiles(
        self, row: np.ndarray, lexical_ids: np.ndarray, model: LoadedModel | None = None
    ) -> tuple[float, float]:
        """Profile-free calibrated log1p (p50, p90) of one booster input row (1 x inputs) and
        the request's lexical token ids (the token-embedding ridge reads them)."""
        return (model or self._model).base_quantiles(row, lexical_ids)

    def row_from_parts(
        self,
        vector: np.ndarray,
        lexical_ids: np.ndarray,
        phrase_ids: np.ndarray,
        model: LoadedModel | None = None,
    ) -> np.ndarray:
        """The booster input row from stored parts (a traffic record: no text needed)."""
        return (model or self._model).row_from_parts(vector, lexical_ids, phrase_ids)

    def featurize(self, request: dict[str, Any] | ParsedRequest) -> _Featurized:
        """Parse (unless given parsed), tokenize (default tokenizer) and run the profile-free
        models once (or take them from the memo when the same text was featurized before)."""
        parsed = request if isinstance(request, ParsedRequest) else parse_request(request)
        self._refresh()
        model = self._model  # one artifact for the whole request, even across a reload
        key = self.memo.key(parsed)
        held = self.memo.get(model, key)
        if held is None:
            held = self._featurize(parsed, model)
            self.memo.put(model, key, held)
        features, exact, tiers = held
        return _Featurized(parsed, features, exact, None if tiers is None else dict(tiers))

    def _featurize(
        self, parsed: ParsedRequest, model: LoadedModel
    ) -> tuple[RequestFeatures, bool, dict[str, float] | None]:
        tok = tokenize_request(parsed, self._tokenizer)
        row, phrases = self._model_input(parsed, tok, model)
        q50, q90 = self.base_quantiles(row, tok.lexical_ids, model)
        features = RequestFeatures.model_construct(  # trusted values: skip validation (latency)
            vector=tuple(row[0, :-2].tolist()),
            lexical_ids=tuple(tok.lexical_ids.tolist()),
            lexical_score=float(row[0, -2]),
            phrase_ids=tuple(phrases.tolist()),
            phrase_score=float(row[0, -1]),
            default_prompt_tokens=tok.prompt_tokens,
            base_log_p50=q50,
            base_log_p90=q90,
            reasoning_probability=model.reasoning_probability(row),
        )
        return features, tok.exact, self.difficulty.tier_success(parsed)

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
        per50 = max(1, round(math.expm1(min(l50, MAX_LOG))))
        per90 = max(per50, round(math.expm1(min(l90, MAX_LOG))))

        ratio_log = cal.reasoning_log_ratio(self.calibration_config)
        think = math.expm1(min(l50 + ratio_log, MAX_LOG))
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

    # -- calibration (held by the book: calibration_book.py) --------------------------------
    def prior_for(self, profile: Profile | str) -> ProfileCalibration:
        """Where a profile without a calibration of its own starts (`CalibrationBook`)."""
        return self.calibrations.prior_for(profile)

    def family_prior(self, profile: Profile | str) -> ProfileCalibration:
        """A training model's factor when the profile's family matches, else none."""
        return self.calibrations.family_prior(profile)

    def calibration_for(self, profile: Profile | str) -> ProfileCalibration:
        """The profile's current calibration (learned, else its prior)."""
        self._refresh()
        return self.calibrations.current(profile)

    def log_offset(self, profile: Profile | str) -> float:
        """The profile's current log length factor (what `observe` moves)."""
        return self.calibration_for(profile).log_offset(self.calibration_config)

    def observe(
        self,
        profile: Profile | str,
        prediction: Prediction | RequestFeatures | dict[str, Any],
        output_tokens: int,
        reasoning_tokens: int = 0,
        max_tokens: int | None = None,
    ) -> ProfileCalibration:
        """Learn from one finished request: update and persist the profile's calibration, and
        record the request's features and actual tokens as a traffic row.

        `prediction` is what `predict` returned for this request (or its `.features`, or the
        request body itself, which is then featurized again). `output_tokens` is the total
        completion tokens over all choices (thinking tokens excluded when reported apart).
        `max_tokens`: the per-choice cap the engine was sent, when the caller lowered it below
        the client's; with a `Prediction` its own cap (the client's, or the context room)
        counts too. An answer that reached the cap is censored (`calibration.was_cut`).
        """
        check_counts(output_tokens, reasoning_tokens)
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
        predicted = prediction if isinstance(prediction, Prediction) else None
        return self.calibrations.observe(
            profile, features, n, output_tokens, reasoning_tokens, predicted,
            answer_cap(predicted, max_tokens),
        )  # fmt: skip

    def observe_many(
        self, items: list[tuple[Profile | str, Prediction, int, int, int | None]]
    ) -> None:
        """`observe(profile, prediction, output_tokens, reasoning_tokens, max_tokens)` for
        each item in order, with one store transaction for all
        (`CalibrationBook.observe_many`): what a group of settled requests teaches. All or
        nothing."""
        rows = []
        for profile, prediction, output_tokens, reasoning_tokens, max_tokens in items:
            if prediction.features is None:
                raise ValueError("this Prediction carries no features (was it deserialized?)")
            rows.append((profile, prediction.features, prediction.n, output_tokens,
                         reasoning_tokens, prediction,
                         answer_cap(prediction, max_tokens)))  # fmt: skip
        self.calibrations.observe_many(rows)

    def observe_batch(
        self,
        items: list[tuple[Profile | str, RequestFeatures, int, int]],
    ) -> dict[str, ProfileCalibration]:
        """Learn from many finished requests at once, all or nothing (see
        `CalibrationBook.observe_batch`: counts per choice, p90 set by split conformal)."""
        return self.calibrations.observe_batch(items)

    def _refresh(self, force: bool = False) -> None:
        """Re-read calibrations other processes wrote, and reload a replaced artifact, at most
        every refresh_seconds."""
        now = time.monotonic()
        if not force and now - self._loaded_at < self.refresh_seconds:
            return
        self._loaded_at = now
        if not force:
            self.reload_artifact()
        self.calibrations.load()

    def refresh(self) -> None:
        """Re-read calibrations and reload a replaced artifact now."""
        self.reload_artifact()
        self._refresh(force=True)


def answer_cap(prediction: Prediction | None, max_tokens: int | None) -> int | None:
    """The per-choice cap an answer ran under: the smaller of the cap the engine was sent and
    the prediction's own (the client's `max_tokens` or the context room); None when neither
    is known."""
    caps = [c for c in (max_tokens, prediction.max_tokens if prediction else None) if c]
    return min(caps) if caps else None


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
