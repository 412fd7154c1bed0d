"""Train the predictor from the shared data (and optionally served traffic) into an artifact.

Method (details in docs/predictor.md): every example is a (request, answering model, answer)
triple, answers counted with the default tokenizer, target y = log1p(output tokens). The core
fit (`fit.fit_core`: model factors, source levels, stacked ridge scores, quantile boosters,
out-of-source conformal shifts per predicted-length class) is the one the
leave-one-source-out evaluation (`loso`) scores, so the figures describe what ships.
Here: an optional by-prompt held-out split (the in-distribution figure), the reasoning
classifier on weak labels, the baselines, and the artifact. All randomness is seeded and
LightGBM runs deterministic with a fixed thread count: a refit is byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from orchestrator.predict.artifact import (
    Artifact,
    ArtifactMeta,
    BaselineParams,
    KnownModel,
    feature_schema,
)
from orchestrator.predict.features import MODEL_INPUTS
from orchestrator.predict.offline.boosters import lgb_params
from orchestrator.predict.offline.data import Example, load_examples
from orchestrator.predict.offline.evaluate import EvalLine, evaluate
from orchestrator.predict.offline.fit import (
    VOCAB_SIZE,
    Fitted,
    TrainConfig,
    fit_core,
    fixed_effects,
)
from orchestrator.predict.offline.importance import (
    ImportanceConfig,
    effective_share,
    traffic_request_scale,
)
from orchestrator.predict.offline.loso import fit_baselines, known_priors
from orchestrator.predict.offline.table import (
    TRAFFIC_SOURCE,
    Table,
    add_traffic,
    featurize_examples,
)
from orchestrator.predict.phrases import PHRASE_BUCKETS
from orchestrator.predict.schema import PredictorSettings, RequestFeatures
from orchestrator.predict.store import TrafficRecord

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "fixed_effects", "train", "write_heldout"]


def _hash_percent(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100


@dataclass
class TrainResult:
    artifact: Artifact
    heldout: list[EvalLine]
    sources: list[str]
    metrics: dict[str, Any]


def train(
    cfg: TrainConfig,
    examples: list[Example] | None = None,
    traffic: Iterable[TrafficRecord] = (),
    traffic_offsets: dict[str, float] | None = None,
    evaluate_heldout: bool = True,
    table: Table | None = None,
    extra_meta: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    unlabelled: Sequence[RequestFeatures] = (),
    importance: ImportanceConfig | None = None,
) -> TrainResult:
    """Fit the whole predictor; returns the artifact, the held-out lines and their metrics.

    `table`: the featurized offline data (else `examples` are featurized); traffic records
    of the current feature layout are appended as rows of source "traffic". `unlabelled`:
    the deployment's prompts (featurized, no answers): the offline training requests are
    reweighted toward them (`importance.py`, settings `importance`). `progress` receives a
    line per stage."""
    say = progress or (lambda line: None)
    if table is None:
        table = featurize_examples(load_examples() if examples is None else examples)
    table = add_traffic(table, traffic, traffic_offsets)
    n_req = len(table.groups)
    if cfg.all_data:
        req_test = np.zeros(n_req, dtype=bool)
    else:
        req_test = np.array(
            [
                not g.startswith("traffic:") and _hash_percent(f"{cfg.seed}:{g}") < cfg.test_percent
                for g in table.groups
            ]
        )
    row_test = req_test[table.row_request]
    tr = ~row_test
    log.info("rows: %d train, %d held out", int(tr.sum()), int(row_test.sum()))

    say(f"fitting on {int(tr.sum())} rows ({len(set(table.row_source[tr]))} sources)")
    scale = None
    traffic_meta: dict[str, Any] = {}
    if unlabelled:
        imp = importance or ImportanceConfig()
        say(f"weighting the training requests toward {len(unlabelled)} unlabelled prompts")
        scale = traffic_request_scale(
            table,
            tr,
            np.asarray([p.vector for p in unlabelled], dtype=np.float64),
            [np.asarray(p.lexical_ids, dtype=np.int64) for p in unlabelled],
            imp,
        )
        offline = np.unique(table.row_request[tr & (table.row_source != TRAFFIC_SOURCE)])
        share = effective_share(scale[offline])
        say(f"  effective share of the offline requests {share:.2f}")
        traffic_meta = {
            "unlabelled_prompts": {
                "prompts": len(unlabelled),
                **imp.__dict__,
                "effective_share": round(share, 4),
            }
        }
    fitted = fit_core(table, tr, cfg, progress=say, request_scale=scale)
    say("reasoning classifier and baselines")
    known = {
        name: KnownModel(
            log_offset=round(p.log_offset, 6),
            p90_shift=round(p.p90_shift, 6),
            rows=int((tr & (table.row_model == name)).sum()),
        )
        for name, p in known_priors(fitted, table, tr).items()
    }

    # reasoning classifier (offline weak labels only) and baselines
    x_req = fitted.x_req
    lab = np.where(~req_test & (table.reasoning >= 0))[0]
    breason = lgb.train(
        lgb_params(cfg, objective="binary", num_leaves=15, min_data_in_leaf=20),
        lgb.Dataset(x_req[lab], table.reasoning[lab].astype(float)),
        num_boost_round=200,
    )
    base = fit_baselines(fitted, table, tr, cfg)
    params = BaselineParams(
        constant_log_p50=base.const[0],
        constant_log_p90=base.const[1],
        length_coef=(base.length[0], base.length[1]),
        length_p50_resid=base.length[2],
        length_p90_resid=base.length[3],
        bucket_edges=base.edges,
        bucket_log_p50=tuple(r[0] for r in base.bucket_reps),
        bucket_log_p90=tuple(r[1] for r in base.bucket_reps),
    )

    sources = {
        str(s): int(((table.row_source == s) & tr).sum()) for s in sorted(set(table.row_source))
    }
    fingerprint = hashlib.sha256(
        table.row_tokens.astype(np.int64).tobytes() + "\n".join(table.groups).encode()
    ).hexdigest()[:16]
    meta = ArtifactMeta(
        feature_names=MODEL_INPUTS,
        feature_schema=feature_schema(MODEL_INPUTS),
        vocab_size=VOCAB_SIZE,
        lexical_intercept=fitted.lexical[1],
        phrase_buckets=PHRASE_BUCKETS,
        phrase_intercept=fitted.phrase[1],
        embedding_intercept=fitted.embedding[1],
        embedding_blend=fitted.embedding_blend,
        **_type_fields(fitted),
        p50_shift=fitted.p50_shift,
        p90_shift=0.0,
        p90_class_edges=fitted.class_edges,
        p90_class_shifts=fitted.class_shifts,
        known_models=known,
        settings=PredictorSettings(),
        baselines=params,
        training={
            "config": cfg.__dict__,
            "train_rows": int(tr.sum()),
            "heldout_rows": int(row_test.sum()),
            "train_prompts": int(len(set(np.asarray(table.groups)[~req_test]))),
            "heldout_prompts": int(len(set(np.asarray(table.groups)[req_test]))),
            "train_rows_by_source": sources,
            "source_levels": {k: round(v, 6) for k, v in fitted.source_levels.items()},
            "data_fingerprint": fingerprint,
            "lightgbm": lgb.__version__,
            **traffic_meta,
            **(extra_meta or {}),
        },
    )
    artifact = Artifact(
        meta=meta,
        boosters={
            "p50": fitted.b50,
            "p90": fitted.b90,
            "reasoning": breason,
            "buckets": base.bucket,
        },
        lexical_weights=fitted.lexical[0],
        phrase_weights=fitted.phrase[0],
        embedding_weights=fitted.embedding[0],
    )

    pairs = [
        (
            EvalLine(
                table.requests[table.row_request[i]],
                int(table.row_tokens[i]),
                str(table.row_model[i]),
            ),
            str(table.row_source[i]),
        )
        for i in np.where(row_test)[0]
        if table.requests[table.row_request[i]] is not None
    ]
    random.Random(cfg.seed).shuffle(pairs)  # interleave models for the online mode
    heldout = [line for line, _ in pairs]
    sources_of = [src for _, src in pairs]
    metrics: dict[str, Any] = {}
    if evaluate_heldout and heldout:
        say(f"evaluating on {len(heldout)} held-out lines")
        metrics = evaluate_artifact(artifact, heldout, sources_of, table, req_test)
        artifact.meta = meta.model_copy(update={"heldout": _strip_latency(metrics)})
    return TrainResult(artifact=artifact, heldout=heldout, sources=sources_of, metrics=metrics)


def evaluate_artifact(
    artifact: Artifact,
    heldout: list[EvalLine],
    sources_of: list[str],
    table: Table,
    req_test: np.ndarray,
) -> dict[str, Any]:
    """Held-out metrics in the three modes, per source, and reasoning-classifier AUC."""
    from orchestrator.predict.predictor import Predictor

    out: dict[str, Any] = {}
    for mode, kwargs in (
        ("profile_aware", {"use_profile": True}),
        ("profile_agnostic", {"use_profile": False}),
        ("online_calibration", {"use_profile": False, "online": True}),
    ):
        predictor = Predictor(artifact, store=None)
        out[mode] = evaluate(heldout, predictor, **kwargs)
    sources = {}
    by_source: dict[str, list[EvalLine]] = {}
    for line, src in zip(heldout, sources_of, strict=True):
        by_source.setdefault(src, []).append(line)
    for src, lines in sorted(by_source.items()):
        predictor = Predictor(artifact, store=None)
        sources[src] = evaluate(lines, predictor, use_profile=True)["methods"]["model"]
    out["model_by_source"] = sources
    out["reasoning_auc"] = _reasoning_auc(artifact, table, req_test)
    return out


def _reasoning_auc(artifact: Artifact, table: Table, req_test: np.ndarray) -> float:
    from scipy.stats import rankdata

    idx = np.where(req_test & (table.reasoning >= 0))[0]
    if len(idx) == 0 or len(set(table.reasoning[idx])) < 2:
        return float("nan")
    from orchestrator.predict.predictor import Predictor

    predictor = Predictor(artifact, store=None)
    scores = np.array(
        [predictor.featurize(table.requests[i]).features.reasoning_probability for i in idx]
    )
    labels = table.reasoning[idx]
    ranks = rankdata(scores)
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _strip_latency(metrics: Any) -> Any:
    """Metrics without wall-clock figures (the artifact must be byte-reproducible)."""
    if isinstance(metrics, dict):
        return {
            k: _strip_latency(v) for k, v in metrics.items() if not str(k).startswith("latency")
        }
    if isinstance(metrics, float):
        return round(metrics, 4)
    return metrics


def write_heldout(lines: list[EvalLine], sources: list[str], path: Path) -> None:
    """The held-out split as an eval file (`orchestrator predictor eval --data PATH`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for line, src in zip(lines, sources, strict=True):
            obj = {
                "request": line.request,
                "output_tokens": line.output_tokens,
                "profile": line.profile,
                "source": src,
            }
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _type_fields(fitted: Fitted) -> dict[str, object]:
    """The artifact's prompt-type fields (`prompt_type.PromptTerms`) of a core fit."""
    terms = fitted.terms
    if terms is None or not terms.typed:
        return {}
    return {
        "chat_blend": terms.chat_blend,
        "math_term": terms.math_term,
        "pasted_term": terms.pasted_term,
        "cue_term": terms.cue_term,
    }
