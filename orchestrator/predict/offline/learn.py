"""Fold labelled requests into the predictor's traffic store (`orchestrator predictor learn`).

A labelled line is `{"request": <chat body>, "output_tokens": N}` with optional `"profile"`
(else the `--profile` given) and `"reasoning_tokens"`. Every line is read, validated and
featurized before anything is written; one bad line rejects the whole file with its line
number. The good file goes in with one store transaction (`Predictor.observe_batch`): each
profile's calibration moves at once, its p90 shift set by split conformal prediction on the
lines (so the very next prediction uses it; a running server re-reads it on its next
refresh) and the lines become traffic records. Lines without a profile teach the "default"
calibration: predictions that name no profile, and profiles with none of their own, use it.

`refit_from_traffic` (`predictor learn --refit`, `predictor train --from-traffic`) refits the
model on the offline data plus every traffic record, writes it where `Predictor.default()`
and a running server look (they reload it on their next refresh), and replays every
profile's calibration against it (`replay_calibrations`). With the deployment's unlabelled
prompts (`read_unlabelled`: `--unlabelled FILE`) the shared rows are weighted toward them
first (`importance.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.predict.calibration import ProfileCalibration, observe, recalibrate_p90
from orchestrator.predict.predictor import DEFAULT_CALIBRATION, Predictor
from orchestrator.predict.request import PredictorInputError
from orchestrator.predict.schema import RequestFeatures
from orchestrator.predict.store import PredictorStore

DEFAULT_PROFILE = DEFAULT_CALIBRATION


class LearnInputError(ValueError):
    """The labelled file has bad lines; `errors` lists each as 'line N: why'."""

    def __init__(self, path: Path | str, errors: list[str]) -> None:
        self.errors = errors
        shown = "; ".join(errors[:10]) + ("; ..." if len(errors) > 10 else "")
        super().__init__(f"{path}: {len(errors)} bad line(s), nothing learned: {shown}")


@dataclass(frozen=True)
class LabelledLine:
    number: int
    request: dict[str, Any]
    output_tokens: int
    profile: str
    reasoning_tokens: int = 0


def _count(obj: dict[str, Any], key: str, required: bool) -> int:
    value = obj.get(key)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key}: must be an integer >= 0, got {value!r}")
    return value


def _read(path: Path) -> str:
    """The file's text; unreadable: `LearnInputError` naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LearnInputError(path, [str(exc)]) from exc


def _by_line(errors: list[str]) -> list[str]:
    """'line N: ...' errors in line order."""
    return sorted(errors, key=lambda e: int(e.split()[1].rstrip(":")))


def _objects(text: str, not_object: str) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(line number, JSON object) of each non-blank JSONL line, and 'line N: ...' errors for
    lines that are not JSON or not an object (`not_object` says what was expected)."""
    objects: list[tuple[int, dict[str, Any]]] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: {exc}")
            continue
        if isinstance(obj, dict):
            objects.append((number, obj))
        else:
            errors.append(f"line {number}: {not_object}")
    return objects, errors


def parse_labelled(text: str, profile: str | None) -> tuple[list[LabelledLine], list[str]]:
    """Labelled lines of a JSONL text and the errors ('line N: ...'); blank lines skipped."""
    lines: list[LabelledLine] = []
    objects, errors = _objects(text, "must be a JSON object")
    for number, obj in objects:
        try:
            request = obj.get("request")
            if not isinstance(request, dict):
                raise ValueError("request: must be a JSON object (an OpenAI chat body)")
            name = obj.get("profile", profile) or DEFAULT_PROFILE
            if not isinstance(name, str):
                raise ValueError(f"profile: must be a string, got {name!r}")
            lines.append(
                LabelledLine(
                    number,
                    request,
                    _count(obj, "output_tokens", required=True),
                    name,
                    _count(obj, "reasoning_tokens", required=False),
                )
            )
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    return lines, _by_line(errors)


@dataclass(frozen=True)
class LearnReport:
    lines: int
    profiles: dict[str, int]  # lines per profile
    before: dict[str, ProfileCalibration]
    after: dict[str, ProfileCalibration]


def learn_file(predictor: Predictor, path: Path, profile: str | None = None) -> LearnReport:
    """Validate and featurize every line, then fold them all in (one transaction)."""
    lines, errors = parse_labelled(_read(path), profile)
    items: list[tuple[str, RequestFeatures, int, int]] = []
    for line in lines:
        try:
            done = predictor.featurize(line.request)
        except PredictorInputError as exc:
            errors.append(f"line {line.number}: request.{exc}")
            continue
        n = done.parsed.n
        items.append(
            (line.profile, done.features, line.output_tokens // n, line.reasoning_tokens // n)
        )
    if errors:
        raise LearnInputError(path, _by_line(errors))
    if not items:
        raise LearnInputError(path, ["no labelled lines"])
    names = sorted({name for name, *_ in items})
    before = {name: predictor.calibration_for(name) for name in names}
    after = predictor.observe_batch(items)
    counts = {name: sum(1 for n, *_ in items if n == name) for name in names}
    return LearnReport(len(items), counts, before, after)


def read_unlabelled(predictor: Predictor, path: Path) -> list[RequestFeatures]:
    """The deployment's prompts of a JSONL file, featurized: each line a chat body, or an
    object with a "request" chat body (a `learn` file: any "output_tokens" is ignored).
    Every bad line is reported with its number (`LearnInputError`); blank lines skipped."""
    out: list[RequestFeatures] = []
    objects, errors = _objects(
        _read(path), 'must be a JSON object (a chat body or {"request": ...})'
    )
    for number, obj in objects:
        body = obj.get("request", obj)
        if not isinstance(body, dict):
            errors.append(f"line {number}: request: must be a JSON object (an OpenAI chat body)")
            continue
        try:
            out.append(predictor.featurize(body).features)
        except PredictorInputError as exc:
            errors.append(f"line {number}: request.{exc}")
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        raise LearnInputError(path, _by_line(errors))
    if not out:
        raise LearnInputError(path, ["no prompts"])
    return out


def replay_calibrations(predictor: Predictor, store: PredictorStore) -> dict[str, int]:
    """Recompute every profile's calibration from its traffic records (in arrival order)
    against `predictor`'s artifact, its p90 shift recalibrated on its most recent records
    (the forgetting window), and store them in one transaction. Records of another feature
    layout are skipped. Returns records replayed per profile."""
    states: dict[str, ProfileCalibration] = {}
    counts: dict[str, int] = {}
    recent: dict[str, list[tuple[float, int]]] = {}
    window = int(predictor.calibration_config.memory)
    schema = predictor.feature_schema
    for rec in store.iter_records():
        if rec.feature_schema != schema:
            continue
        row = predictor.row_from_parts(
            np.asarray(rec.features, dtype=np.float32), rec.lexical_ids, rec.phrase_ids
        )
        q50, q90 = predictor.base_quantiles(row, rec.lexical_ids)
        cal = states.get(rec.profile) or _replay_prior(predictor, rec.profile, states)
        seen = recent.setdefault(rec.profile, [])
        seen.append((q90, int(rec.output_tokens)))
        if len(seen) > 2 * window:
            del seen[:-window]
        states[rec.profile] = observe(
            cal,
            q50,
            q90,
            int(rec.output_tokens),
            int(rec.reasoning_tokens),
            predictor.calibration_config,
        )
        counts[rec.profile] = counts.get(rec.profile, 0) + 1
    for name, cal in states.items():
        base90, actual = zip(*recent[name][-window:], strict=True)
        states[name] = recalibrate_p90(cal, base90, actual, predictor.calibration_config)
    if states:
        store.replace_calibrations(states)
    return counts


def _replay_prior(
    predictor: Predictor, profile: str, states: dict[str, ProfileCalibration]
) -> ProfileCalibration:
    """A replayed profile starts where a served one would: the replayed default calibration
    when there is one, else its family prior (the stored states are being rebuilt)."""
    if profile != DEFAULT_CALIBRATION and DEFAULT_CALIBRATION in states:
        return states[DEFAULT_CALIBRATION]
    return predictor.family_prior(profile)


@dataclass(frozen=True)
class RefitReport:
    artifact_dir: Path
    traffic_records: int
    replayed: dict[str, int]
    seconds: float


def refit_from_traffic(
    data_root: Path,
    store: PredictorStore,
    cfg: Any = None,
    out: Path | None = None,
    progress: Callable[[str], None] = print,
    extra_meta: dict[str, Any] | None = None,
    evaluate_heldout: bool = False,
    unlabelled: Sequence[RequestFeatures] = (),
) -> tuple[RefitReport, Any]:
    """Refit on the shared data plus every traffic record of `store` (traffic rows weighted
    `cfg.traffic_weight`x), the shared rows reweighted toward the `unlabelled` prompts when
    given (`importance.py`), write the artifact to `out` (default: the traffic artifact
    folder that `Predictor.default()` and a running server follow) and replay the
    calibrations against it. Returns the report and the `TrainResult`."""
    from orchestrator.predict.artifact import traffic_artifact_dir
    from orchestrator.predict.offline.table import cached_table
    from orchestrator.predict.offline.train import TrainConfig, train

    cfg = cfg or TrainConfig()
    started = time.perf_counter()
    traffic = list(store.iter_records())
    current = Predictor(store=store, record_traffic=False)
    offsets = {name: current.log_offset(name) for name in {r.profile for r in traffic}}
    progress(f"traffic records: {len(traffic)} from {store.path} (weight {cfg.traffic_weight}x)")
    progress("reading the shared training data (featurized once, then cached)")
    table = cached_table(data_root)
    result = train(
        cfg,
        table=table,
        traffic=traffic,
        traffic_offsets=offsets,
        evaluate_heldout=evaluate_heldout,
        extra_meta=extra_meta,
        progress=progress,
        unlabelled=unlabelled,
    )
    folder = out or traffic_artifact_dir()
    result.artifact.save(folder)
    progress(f"artifact written to {folder}")
    replayed = replay_calibrations(Predictor(folder, store=store, record_traffic=False), store)
    progress(f"calibrations replayed against the refit: {replayed}")
    return RefitReport(folder, len(traffic), replayed, time.perf_counter() - started), result
