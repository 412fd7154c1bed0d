"""The predictor's per-profile calibrations: where each profile starts, where it is now, and
how finished requests move it (in memory, and persisted with a traffic row when there is a
store).

Invariants:
- a profile without a calibration of its own starts from the learned `DEFAULT_CALIBRATION`
  ("default", what `predictor learn` without `--profile` teaches) when there is one, else from
  a training model's factor when its family matches, else from none;
- with a store, every update is read-modify-write in the store (one transaction), so
  processes sharing it do not lose each other's steps; a batch is all or nothing;
- the book is thread-safe: its in-memory map changes under one lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from orchestrator.predict.calibration import (
    CalibrationConfig,
    ProfileCalibration,
    observe,
    recalibrate_p90,
    was_cut,
)
from orchestrator.predict.loaded_model import LoadedModel, normalize_model_name
from orchestrator.predict.schema import Prediction, RequestFeatures
from orchestrator.predict.store import PredictorStore, TrafficRecord

if TYPE_CHECKING:
    from orchestrator.catalog.schema import Profile

DEFAULT_CALIBRATION = "default"  # predictions naming no profile; start of a new profile


def _name(profile: Profile | str) -> str:
    return profile if isinstance(profile, str) else profile.name


def check_counts(output_tokens: int, reasoning_tokens: int) -> None:
    """ValueError unless both token counts of a finished request are integers >= 0."""
    if isinstance(output_tokens, bool) or not isinstance(output_tokens, int) or output_tokens < 0:
        raise ValueError(f"output_tokens must be an integer >= 0, got {output_tokens!r}")
    if not isinstance(reasoning_tokens, int) or reasoning_tokens < 0:
        raise ValueError(f"reasoning_tokens must be an integer >= 0, got {reasoning_tokens!r}")


@dataclass(eq=False)
class CalibrationBook:
    """Calibrations by profile name. `model` returns the artifact in force (its training
    models' priors and settings seed new profiles; it may be swapped by a reload)."""

    model: Callable[[], LoadedModel]
    config: CalibrationConfig
    store: PredictorStore | None
    record_traffic: bool
    feature_schema: str
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _calibrations: dict[str, ProfileCalibration] = field(
        default_factory=dict, init=False, repr=False
    )

    def adopt(self, other: CalibrationBook) -> None:
        """Start from `other`'s in-memory calibrations (frozen values: sharing them is safe)."""
        with other._lock:
            taken = dict(other._calibrations)
        with self._lock:
            self._calibrations.update(taken)

    def prior_for(self, profile: Profile | str) -> ProfileCalibration:
        """The starting calibration: the learned "default" calibration when there is one (a
        workload taught by `predictor learn` without `--profile`), else a training model's
        factor when the family matches, else none."""
        if _name(profile) != DEFAULT_CALIBRATION:
            with self._lock:
                learned = self._calibrations.get(DEFAULT_CALIBRATION)
            if learned is not None:
                return learned
        return self.family_prior(profile)

    def family_prior(self, profile: Profile | str) -> ProfileCalibration:
        """A training model's factor when the profile's family matches, else none."""
        model = self.model()
        ratio = math.log(model.artifact.meta.settings.reasoning_prior_ratio)
        names = (
            [profile] if isinstance(profile, str) else [profile.served_model_name, profile.model]
        )
        for name in names:
            known = model.known.get(normalize_model_name(name))
            if known is not None:
                return ProfileCalibration(
                    prior_offset=known.log_offset,
                    p90_shift=known.p90_shift,
                    prior_reasoning_log_ratio=ratio,
                )
        return ProfileCalibration(prior_reasoning_log_ratio=ratio)

    def current(self, profile: Profile | str) -> ProfileCalibration:
        """The profile's calibration as this book holds it (learned, else its prior)."""
        with self._lock:
            cal = self._calibrations.get(_name(profile))
        return cal if cal is not None else self.prior_for(profile)

    def load(self) -> None:
        """Take in the calibrations the store holds (other processes' steps included)."""
        if self.store is None:
            return
        loaded = self.store.load_calibrations()
        with self._lock:
            self._calibrations.update(loaded)

    def observe(
        self,
        profile: Profile | str,
        features: RequestFeatures,
        n: int,
        output_tokens: int,
        reasoning_tokens: int = 0,
        prediction: Prediction | None = None,
        cap: int | None = None,
    ) -> ProfileCalibration:
        """One finished request of `n` choices: `output_tokens` over all of them (thinking
        excluded when reported apart); records a traffic row when there is a store. `cap`: the
        per-choice token cap it ran under (None: unknown); an answer that reached it is
        censored (`calibration.was_cut`): learned as a lower bound, and no traffic row."""
        check_counts(output_tokens, reasoning_tokens)
        name = _name(profile)
        initial = self.prior_for(profile)
        per_out, per_think = output_tokens // n, reasoning_tokens // n
        cut = was_cut(per_out, cap)

        def step(cal: ProfileCalibration) -> ProfileCalibration:
            return observe(
                cal, features.base_log_p50, features.base_log_p90, per_out, per_think,
                self.config, cut,
            )  # fmt: skip

        if self.store is not None:
            new = self.store.update_calibration(name, initial, step)
        else:
            with self._lock:
                new = step(self._calibrations.get(name, initial))
        with self._lock:
            self._calibrations[name] = new
        if self.store is not None and self.record_traffic and not cut:
            predicted = (prediction.p50_tokens, prediction.p90_tokens) if prediction else (0, 0)
            self.store.add_record(self._record(name, features, predicted, per_out, per_think))
        return new

    def observe_many(
        self,
        items: list[
            tuple[Profile | str, RequestFeatures, int, int, int, Prediction | None, int | None]
        ],
    ) -> None:
        """`observe(*item)` for each item in order, in one store transaction: the same
        calibrations and traffic rows as one `observe` after another (one read and one write
        per profile instead of two transactions per request). All or nothing: on an error
        nothing is applied. Sequential `observe`s when there is no store, no traffic to
        record, or an item of the "default" calibration (the prior of every other profile,
        which would move within the group)."""
        if (
            self.store is None
            or not self.record_traffic
            or len(items) < 2
            or any(_name(item[0]) == DEFAULT_CALIBRATION for item in items)
        ):
            for item in items:
                self.observe(*item)
            return
        batch = []
        for profile, features, n, output_tokens, reasoning_tokens, prediction, cap in items:
            check_counts(output_tokens, reasoning_tokens)
            name = _name(profile)
            per_out, per_think = output_tokens // n, reasoning_tokens // n
            cut = was_cut(per_out, cap)

            def step(
                cal: ProfileCalibration,
                f: RequestFeatures = features,
                out: int = per_out,
                think: int = per_think,
                cut: bool = cut,
            ) -> ProfileCalibration:
                return observe(cal, f.base_log_p50, f.base_log_p90, out, think, self.config, cut)

            predicted = (prediction.p50_tokens, prediction.p90_tokens) if prediction else (0, 0)
            record = self._record(name, features, predicted, per_out, per_think)
            batch.append((record, self.prior_for(profile), step, not cut))
        states = self.store.learn_batch(batch)
        with self._lock:
            self._calibrations.update(states)

    def observe_batch(
        self, items: list[tuple[Profile | str, RequestFeatures, int, int]]
    ) -> dict[str, ProfileCalibration]:
        """Many finished requests at once, all or nothing: (profile, features, output tokens
        per choice, thinking tokens per choice), in order. With a store: one transaction
        (calibrations and traffic records); without: in memory only.

        Each profile's p90 shift is then set by split conformal prediction on its lines of
        this batch (`calibration.recalibrate_p90`: 90% of them at or below p90), so coverage
        is right at once instead of after the adaptive steps have converged."""
        batch = []
        lines: dict[str, list[tuple[float, int]]] = {}
        for profile, features, output_tokens, reasoning_tokens in items:
            name = _name(profile)
            lines.setdefault(name, []).append((features.base_log_p90, output_tokens))

            def step(
                cal: ProfileCalibration,
                f: RequestFeatures = features,
                out: int = output_tokens,
                think: int = reasoning_tokens,
            ) -> ProfileCalibration:
                return observe(cal, f.base_log_p50, f.base_log_p90, out, think, self.config)

            predicted = (
                max(1, round(math.expm1(features.base_log_p50))),
                max(1, round(math.expm1(features.base_log_p90))),
            )
            record = self._record(name, features, predicted, output_tokens, reasoning_tokens)
            batch.append((record, self.prior_for(profile), step, True))

        def finish(name: str, cal: ProfileCalibration) -> ProfileCalibration:
            base90, actual = zip(*lines[name], strict=True)
            return recalibrate_p90(cal, base90, actual, self.config)

        if self.store is not None:
            states = self.store.learn_batch(batch, finish)
        else:
            states = {}
            with self._lock:
                for record, initial, step, _ in batch:
                    current = states.get(record.profile) or self._calibrations.get(
                        record.profile, initial
                    )
                    states[record.profile] = step(current)
            states = {name: finish(name, cal) for name, cal in states.items()}
        with self._lock:
            self._calibrations.update(states)
        return states

    def _record(
        self,
        name: str,
        features: RequestFeatures,
        predicted: tuple[int, int],
        output_tokens: int,
        reasoning_tokens: int,
    ) -> TrafficRecord:
        """The traffic row of one request (per choice), for training from traffic."""
        return TrafficRecord(
            profile=name,
            feature_schema=self.feature_schema,
            features=np.asarray(features.vector, dtype=np.float32),
            lexical_ids=np.asarray(features.lexical_ids, dtype=np.int32),
            phrase_ids=np.asarray(features.phrase_ids, dtype=np.int32),
            prompt_tokens=features.default_prompt_tokens,
            predicted_p50=predicted[0],
            predicted_p90=predicted[1],
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
        )
