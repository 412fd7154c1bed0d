"""Fold labelled requests into the predictor's traffic store (`orchestrator predictor learn`).

A labelled line is `{"request": <chat body>, "output_tokens": N}` with optional `"profile"`
(else the `--profile` given) and `"reasoning_tokens"`. Every line is read, validated and
featurized before anything is written; one bad line rejects the whole file with its line
number. The good file goes in with one store transaction (`Predictor.observe_batch`): each
profile's calibration moves at once (so the very next prediction uses it; a running server
re-reads it on its next refresh) and the lines become traffic records that
`predictor train --from-traffic` refits from. `replay_calibrations` recomputes every
profile's calibration from its traffic records against a new artifact after such a refit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.predict.calibration import ProfileCalibration, observe
from orchestrator.predict.predictor import Predictor
from orchestrator.predict.request import PredictorInputError
from orchestrator.predict.schema import RequestFeatures
from orchestrator.predict.store import PredictorStore

DEFAULT_PROFILE = "default"


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


def parse_labelled(text: str, profile: str | None) -> tuple[list[LabelledLine], list[str]]:
    """Labelled lines of a JSONL text and the errors ('line N: ...'); blank lines skipped."""
    lines: list[LabelledLine] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("must be a JSON object")
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
        except (json.JSONDecodeError, ValueError) as exc:
            errors.append(f"line {number}: {exc}")
    return lines, errors


@dataclass(frozen=True)
class LearnReport:
    lines: int
    profiles: dict[str, int]  # lines per profile
    before: dict[str, ProfileCalibration]
    after: dict[str, ProfileCalibration]


def learn_file(predictor: Predictor, path: Path, profile: str | None = None) -> LearnReport:
    """Validate and featurize every line, then fold them all in (one transaction)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LearnInputError(path, [str(exc)]) from exc
    lines, errors = parse_labelled(text, profile)
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
        raise LearnInputError(path, sorted(errors, key=lambda e: int(e.split()[1].rstrip(":"))))
    if not items:
        raise LearnInputError(path, ["no labelled lines"])
    names = sorted({name for name, *_ in items})
    before = {name: predictor.calibration_for(name) for name in names}
    after = predictor.observe_batch(items)
    counts = {name: sum(1 for n, *_ in items if n == name) for name in names}
    return LearnReport(len(items), counts, before, after)


def replay_calibrations(predictor: Predictor, store: PredictorStore) -> dict[str, int]:
    """Recompute every profile's calibration from its traffic records (in arrival order)
    against `predictor`'s artifact, and store them in one transaction. Records of another
    feature layout are skipped. Returns records replayed per profile."""
    states: dict[str, ProfileCalibration] = {}
    counts: dict[str, int] = {}
    schema = predictor._schema
    for rec in store.iter_records():
        if rec.feature_schema != schema:
            continue
        row = predictor.row_from_parts(
            np.asarray(rec.features, dtype=np.float32), rec.lexical_ids, rec.phrase_ids
        )
        q50, q90 = predictor.base_quantiles(row)
        cal = states.get(rec.profile) or predictor.prior_for(rec.profile)
        states[rec.profile] = observe(
            cal,
            q50,
            q90,
            int(rec.output_tokens),
            int(rec.reasoning_tokens),
            predictor.calibration_config,
        )
        counts[rec.profile] = counts.get(rec.profile, 0) + 1
    if states:
        store.replace_calibrations(states)
    return counts
