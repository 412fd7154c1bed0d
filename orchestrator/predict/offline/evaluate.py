"""Evaluate the predictor and the baselines on a JSONL file of answered requests.

Each line: `{"request": <OpenAI chat body>, "output_tokens": N}`, optionally `"profile": NAME`
(the answering model or serving profile, whose calibration is then applied to every method).
Modes: profile-aware (default: the calibration known for NAME, e.g. a training model's
factor), profile-agnostic (`use_profile=False`), and online (`online=True`: each profile starts
uncalibrated and learns from the lines before it, prequentially, as the server would).
Latency is per prediction, wall clock, including parsing and tokenization, token cache cleared.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.predict.features import clear_token_cache, tokenize_request
from orchestrator.predict.offline import baselines
from orchestrator.predict.offline.metrics import summarize
from orchestrator.predict.predictor import Predictor
from orchestrator.predict.request import PredictorInputError, parse_request

METHODS = ("model", *baselines.BASELINES)


@dataclass(frozen=True)
class EvalLine:
    request: dict[str, Any]
    output_tokens: int
    profile: str | None = None


def read_eval_file(path: Path) -> list[EvalLine]:
    """Parse the JSONL file; a malformed line raises ValueError naming its line number."""
    lines: list[EvalLine] = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                tokens = obj["output_tokens"]
                if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
                    raise ValueError("output_tokens must be an integer >= 0")
                if not isinstance(obj["request"], dict):
                    raise ValueError("request must be an object")
                profile = obj.get("profile")
                lines.append(EvalLine(obj["request"], tokens, str(profile) if profile else None))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
    return lines


def _tokens(log_value: float, cap: int | None, n: int) -> int:
    per = max(1, round(math.expm1(min(log_value, 14.0))))
    return (min(per, cap) if cap is not None else per) * n


def evaluate(
    lines: list[EvalLine],
    predictor: Predictor,
    *,
    use_profile: bool = True,
    online: bool = False,
) -> dict[str, Any]:
    """Metrics per method (see `metrics.summarize`), plus the count of skipped bad lines."""
    meta = predictor.meta
    params = meta.baselines
    bucket_booster = predictor.artifact.boosters["buckets"]
    actual: list[int] = []
    preds: dict[str, tuple[list[int], list[int], list[float]]] = {m: ([], [], []) for m in METHODS}
    skipped = 0
    for line in lines:
        key = None
        if use_profile or online:
            key = ("online:" if online else "") + (line.profile or "default")
        clear_token_cache()
        start = time.perf_counter()
        try:
            done = predictor.featurize(line.request)
            pred = predictor.predict_featurized(done, None, calibration=key)
        except PredictorInputError:
            skipped += 1
            continue
        model_s = time.perf_counter() - start
        offset = predictor.log_offset(key) if key else 0.0
        cap, n = done.parsed.max_tokens, done.parsed.n

        clear_token_cache()
        start = time.perf_counter()
        parse_request(line.request)
        c50, c90 = baselines.constant(params)
        const_s = time.perf_counter() - start

        clear_token_cache()
        start = time.perf_counter()
        parsed = parse_request(line.request)
        tok = tokenize_request(parsed, predictor._tokenizer)
        l50, l90 = baselines.length_regression(params, math.log1p(tok.prompt_tokens))
        length_s = time.perf_counter() - start

        clear_token_cache()
        start = time.perf_counter()
        parsed = parse_request(line.request)
        tok = tokenize_request(parsed, predictor._tokenizer)
        row = predictor.model_input(parsed, tok)[0]
        b50, b90 = baselines.bucket_classifier(params, bucket_booster, row[0])
        bucket_s = time.perf_counter() - start

        actual.append(line.output_tokens)
        rows = {
            "model": (pred.p50_tokens, pred.p90_tokens, model_s),
            "constant_median": (
                _tokens(c50 + offset, cap, n),
                _tokens(c90 + offset, cap, n),
                const_s,
            ),
            "length_regression": (
                _tokens(l50 + offset, cap, n),
                _tokens(l90 + offset, cap, n),
                length_s,
            ),
            "bucket_classifier": (
                _tokens(b50 + offset, cap, n),
                _tokens(b90 + offset, cap, n),
                bucket_s,
            ),
        }
        for method, (p50, p90, seconds) in rows.items():
            preds[method][0].append(p50)
            preds[method][1].append(p90)
            preds[method][2].append(seconds)
        if online and key is not None:
            predictor.observe(key, pred, line.output_tokens)

    result: dict[str, Any] = {"lines": len(lines), "skipped": skipped, "methods": {}}
    if not actual:
        return result
    truth = np.asarray(actual)
    for method, (p50s, p90s, secs) in preds.items():
        result["methods"][method] = summarize(
            truth, np.asarray(p50s), np.asarray(p90s), params.bucket_edges, np.asarray(secs)
        )
    return result


_COLUMNS = (
    ("kendall_tau", "tau", "{:.3f}"),
    ("spearman_rho", "rho", "{:.3f}"),
    ("mae_log", "MAE(log)", "{:.3f}"),
    ("p50_coverage", "cov50", "{:.3f}"),
    ("p90_coverage", "cov90", "{:.3f}"),
    ("bucket_accuracy", "bucket5", "{:.3f}"),
    ("latency_p50_ms", "lat p50 ms", "{:.2f}"),
    ("latency_p99_ms", "lat p99 ms", "{:.2f}"),
)


def format_table(result: dict[str, Any]) -> str:
    """A fixed-width table, one row per method."""
    header = f"{'method':<20}" + "".join(f"{title:>11}" for _, title, _ in _COLUMNS)
    out = [header]
    for method, metrics in result.get("methods", {}).items():
        cells = "".join(
            f"{fmt.format(metrics[k]) if k in metrics else '-':>11}" for k, _, fmt in _COLUMNS
        )
        out.append(f"{method:<20}{cells}")
    return "\n".join(out)
