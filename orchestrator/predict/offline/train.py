"""Train the predictor from the shared data (and optionally served traffic) into an artifact.

Method (details in docs/predictor.md):
1. Every example is a (request, answering model, answer) triple; answers are counted with the
   default tokenizer; the target is y = log1p(output tokens).
2. Split by prompt: a prompt's group hash decides train or held-out, so an instruction never
   sits on both sides.
3. The answering model's factor: a two-way fixed-effects fit y ~ prompt + model on the
   training rows (alternating means). Models answering no prompt in common with another
   (o3-mini; traffic profiles) get 0 (traffic: the profile's learned calibration). The
   profile-free target is y - offset[model]; the offsets become the priors of matching profiles.
4. Two ridge models on the ask, each out-of-fold by prompt, become two features: one on the
   set of token ids, one on hashed words, word pairs and openers (`phrases`).
5. LightGBM quantile regressions (alpha 0.5 and 0.9) on the dense features + ridge scores;
   their out-of-fold residuals give conformal shifts (global, and per model for the priors).
6. A LightGBM classifier for the weak "reasoning" label; baselines: constant, prompt-length
   regression, 5-bucket classifier.
All randomness is seeded and LightGBM runs deterministic with a fixed thread count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from orchestrator.predict import lexical
from orchestrator.predict.artifact import (
    Artifact,
    ArtifactMeta,
    BaselineParams,
    KnownModel,
    feature_schema,
)
from orchestrator.predict.features import (
    FEATURE_NAMES,
    MODEL_INPUTS,
    dense_features,
    request_phrase_ids,
    tokenize_request,
)
from orchestrator.predict.offline.baselines import bucket_of
from orchestrator.predict.offline.data import Example, load_examples
from orchestrator.predict.offline.evaluate import EvalLine, evaluate
from orchestrator.predict.phrases import PHRASE_BUCKETS
from orchestrator.predict.request import parse_request
from orchestrator.predict.schema import PredictorSettings
from orchestrator.predict.store import TrafficRecord
from orchestrator.predict.tokenizer import load_default_tokenizer

log = logging.getLogger(__name__)

VOCAB_SIZE = 49152  # SmolLM2 tokenizer


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 7
    test_percent: int = 20
    folds: int = 5
    lexical_damp: float = 1.0
    phrase_damp: float = 0.5
    # small trees with large leaves: rows of one prompt share their features, so a leaf of
    # 200 rows spans ~10+ prompts (31 leaves of 20 rows memorised single prompts)
    rounds: int = 800
    learning_rate: float = 0.03
    num_leaves: int = 7
    min_data_in_leaf: int = 200
    threads: int = 2
    all_data: bool = False  # fit on every prompt (no held-out evaluation)


@dataclass
class Table:
    """Unique requests (R) and answered rows (N) pointing at them."""

    vectors: np.ndarray  # R x F dense features
    lexical_ids: list[np.ndarray]  # R
    phrase_ids: list[np.ndarray]  # R
    groups: list[str]  # R
    reasoning: np.ndarray  # R weak labels (-1: unknown, traffic)
    requests: list[dict[str, Any] | None]  # R bodies (None for traffic)
    row_request: np.ndarray  # N
    row_tokens: np.ndarray  # N output tokens
    row_model: np.ndarray  # N answering model / traffic profile
    row_source: np.ndarray  # N
    fixed_offsets: dict[str, float] = field(default_factory=dict)  # models with a given offset

    @property
    def row_y(self) -> np.ndarray:
        return np.log1p(self.row_tokens.astype(np.float64))


def _hash_percent(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100


def _fold(group: str, seed: int, folds: int) -> int:
    return int(hashlib.sha256(f"fold:{seed}:{group}".encode()).hexdigest()[:8], 16) % folds


def build_table(
    examples: list[Example],
    traffic: Iterable[TrafficRecord] = (),
    traffic_offsets: dict[str, float] | None = None,
) -> Table:
    """Featurize examples (one featurization per unique request) and append traffic rows."""
    tok = load_default_tokenizer()
    index: dict[tuple[str, int], int] = {}
    vectors: list[np.ndarray] = []
    lex_ids: list[np.ndarray] = []
    phrase_sets: list[np.ndarray] = []
    groups: list[str] = []
    labels: list[int] = []
    bodies: list[dict[str, Any] | None] = []
    row_req: list[int] = []
    for ex in examples:
        key = (ex.group, len(ex.messages))
        if key not in index:
            body = ex.request()
            parsed = parse_request(body)
            counted = tokenize_request(parsed, tok)
            index[key] = len(vectors)
            vectors.append(dense_features(parsed, counted))
            lex_ids.append(counted.lexical_ids)
            phrase_sets.append(request_phrase_ids(parsed))
            groups.append(ex.group)
            labels.append(ex.reasoning)
            bodies.append(body)
        row_req.append(index[key])
    encoded = tok.encode_batch_fast([ex.answer for ex in examples], add_special_tokens=False)
    tokens = [len(e.ids) for e in encoded]
    models = [ex.model for ex in examples]
    sources = [ex.source for ex in examples]
    schema = feature_schema(MODEL_INPUTS)
    fixed: dict[str, float] = {}
    for i, rec in enumerate(traffic):
        if rec.feature_schema != schema or len(rec.features) != len(FEATURE_NAMES):
            continue  # recorded under another feature layout
        row_req.append(len(vectors))
        vectors.append(np.asarray(rec.features, dtype=np.float32))
        lex_ids.append(np.asarray(rec.lexical_ids, dtype=np.int32))
        phrase_sets.append(np.asarray(rec.phrase_ids, dtype=np.int32))
        groups.append(f"traffic:{i}")
        labels.append(-1)
        bodies.append(None)
        tokens.append(int(rec.output_tokens))
        name = f"traffic:{rec.profile}"
        models.append(name)
        sources.append("traffic")
        fixed[name] = (traffic_offsets or {}).get(rec.profile, 0.0)
    return Table(
        vectors=np.stack(vectors).astype(np.float32),
        lexical_ids=lex_ids,
        phrase_ids=phrase_sets,
        groups=groups,
        reasoning=np.asarray(labels),
        requests=bodies,
        row_request=np.asarray(row_req),
        row_tokens=np.asarray(tokens),
        row_model=np.asarray(models),
        row_source=np.asarray(sources),
        fixed_offsets=fixed,
    )


def fixed_effects(
    y: np.ndarray,
    row_request: np.ndarray,
    row_model: np.ndarray,
    anchor_models: set[str],
    fixed: dict[str, float],
    iterations: int = 60,
) -> dict[str, float]:
    """Per-model log offsets from y ~ request + model (alternating means).

    Only models that share a request with another model are identified; the rest take
    `fixed` (default 0). Offsets are centred so anchor models average 0."""
    names, model_idx = np.unique(row_model, return_inverse=True)
    req_ids, req_idx = np.unique(row_request, return_inverse=True)
    models_per_req = np.zeros(len(req_ids))
    pairs = np.unique(np.stack([req_idx, model_idx]), axis=1)
    np.add.at(models_per_req, pairs[0], 1)
    shared = np.zeros(len(names), dtype=bool)
    shared[np.unique(model_idx[models_per_req[req_idx] > 1])] = True
    b = np.array([0.0 if shared[i] else fixed.get(n, 0.0) for i, n in enumerate(names)])
    req_count = np.bincount(req_idx)
    model_count = np.bincount(model_idx)
    for _ in range(iterations):
        a = np.bincount(req_idx, y - b[model_idx]) / req_count
        fresh = np.bincount(model_idx, y - a[req_idx]) / model_count
        b = np.where(shared, fresh, b)
    anchors = np.array([n in anchor_models and shared[i] for i, n in enumerate(names)])
    if anchors.any():
        b = np.where(shared, b - b[anchors].mean(), b)
    return {str(n): float(v) for n, v in zip(names, b, strict=True)}


def _lgb_params(cfg: TrainConfig, **extra: Any) -> dict[str, Any]:
    params = {
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": cfg.seed,
        "num_threads": cfg.threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    params.update(extra)
    return params


def _quantile_booster(cfg: TrainConfig, x: np.ndarray, y: np.ndarray, alpha: float) -> lgb.Booster:
    params = _lgb_params(cfg, objective="quantile", alpha=alpha)
    return lgb.train(params, lgb.Dataset(x, y, free_raw_data=True), num_boost_round=cfg.rounds)


def _oof_ridge(
    id_sets: list[np.ndarray],
    req_target: np.ndarray,
    train_reqs: np.ndarray,
    test_reqs: np.ndarray,
    folds: np.ndarray,
    cfg: TrainConfig,
    width: int,
    damp: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge scores per request: out-of-fold on training requests (so the boosters never see a
    score fitted on their own target), from the full fit on held-out ones; plus that fit."""
    scores = np.zeros(len(id_sets))
    for k in range(cfg.folds):
        fit_reqs = train_reqs[folds[train_reqs] != k]
        w, b = lexical.fit_ridge([id_sets[i] for i in fit_reqs], req_target[fit_reqs], width, damp)
        for i in train_reqs[folds[train_reqs] == k]:
            scores[i] = lexical.score(id_sets[i], w, b)
    weights, intercept = lexical.fit_ridge(
        [id_sets[i] for i in train_reqs], req_target[train_reqs], width, damp
    )
    for i in test_reqs:
        scores[i] = lexical.score(id_sets[i], weights, intercept)
    return scores, weights, intercept


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
) -> TrainResult:
    """Fit the whole predictor; returns the artifact, the held-out lines and their metrics."""
    examples = load_examples() if examples is None else examples
    table = build_table(examples, traffic, traffic_offsets)
    y = table.row_y
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

    # 3. answering-model factors
    anchors = set(table.row_model[table.row_source == "alpaca_eval"])
    offsets = fixed_effects(
        y[tr], table.row_request[tr], table.row_model[tr], anchors, table.fixed_offsets
    )
    row_off = np.array([offsets.get(m, 0.0) for m in table.row_model])
    yt = y - row_off

    # 4. the two ridge models, out of fold by prompt
    train_reqs = np.unique(table.row_request[tr])
    req_target = np.bincount(table.row_request[tr], yt[tr], minlength=n_req) / np.maximum(
        1, np.bincount(table.row_request[tr], minlength=n_req)
    )
    folds = np.array([_fold(g, cfg.seed, cfg.folds) for g in table.groups])
    test_reqs = np.where(req_test)[0]
    lex, weights, intercept = _oof_ridge(
        table.lexical_ids,
        req_target,
        train_reqs,
        test_reqs,
        folds,
        cfg,
        VOCAB_SIZE,
        cfg.lexical_damp,
    )
    phrase, phrase_weights, phrase_intercept = _oof_ridge(
        table.phrase_ids,
        req_target,
        train_reqs,
        test_reqs,
        folds,
        cfg,
        PHRASE_BUCKETS,
        cfg.phrase_damp,
    )

    x_req = np.column_stack([table.vectors, lex, phrase]).astype(np.float32)
    x = x_req[table.row_request]

    # 5. quantile boosters + out-of-fold conformal shifts
    b50 = _quantile_booster(cfg, x[tr], yt[tr], 0.5)
    b90 = _quantile_booster(cfg, x[tr], yt[tr], 0.9)
    row_fold = folds[table.row_request]
    oof50 = np.zeros(len(y))
    oof90 = np.zeros(len(y))
    for k in range(cfg.folds):
        fit = tr & (row_fold != k)
        held = tr & (row_fold == k)
        oof50[held] = _quantile_booster(cfg, x[fit], yt[fit], 0.5).predict(x[held])
        oof90[held] = _quantile_booster(cfg, x[fit], yt[fit], 0.9).predict(x[held])
    p50_shift = float(np.quantile(yt[tr] - oof50[tr], 0.5))
    p90_shift = float(np.quantile(yt[tr] - oof90[tr], 0.9))
    known: dict[str, KnownModel] = {}
    for name in sorted(set(table.row_model[tr])):
        if name.startswith("traffic:"):
            continue
        m = tr & (table.row_model == name)
        resid = y[m] - (oof90[m] + p90_shift + offsets[name])
        known[name] = KnownModel(
            log_offset=round(offsets[name], 6),
            p90_shift=round(float(np.quantile(resid, 0.9)), 6),
            rows=int(m.sum()),
        )

    # 6. reasoning classifier (offline weak labels only) and baselines
    lab = np.where(~req_test & (table.reasoning >= 0))[0]
    breason = lgb.train(
        _lgb_params(cfg, objective="binary", num_leaves=15, min_data_in_leaf=20),
        lgb.Dataset(x_req[lab], table.reasoning[lab].astype(float)),
        num_boost_round=200,
    )
    tokens_t = np.expm1(yt[tr])
    edges = tuple(int(round(v)) for v in np.quantile(table.row_tokens[tr], [0.2, 0.4, 0.6, 0.8]))
    bucket_labels = bucket_of(tokens_t, edges)
    bbuckets = lgb.train(
        _lgb_params(cfg, objective="multiclass", num_class=5, num_leaves=7),
        lgb.Dataset(x[tr], bucket_labels),
        num_boost_round=80,
    )
    reps50, reps90 = [], []
    for k in range(5):
        sel = yt[tr][bucket_labels == k]
        sel = sel if len(sel) else yt[tr]
        reps50.append(float(np.quantile(sel, 0.5)))
        reps90.append(float(np.quantile(sel, 0.9)))
    design = np.column_stack([np.ones(int(tr.sum())), x[tr, 0]])
    coef = np.linalg.lstsq(design, yt[tr], rcond=None)[0]
    resid = yt[tr] - design @ coef
    base = BaselineParams(
        constant_log_p50=float(np.quantile(yt[tr], 0.5)),
        constant_log_p90=float(np.quantile(yt[tr], 0.9)),
        length_coef=(float(coef[0]), float(coef[1])),
        length_p50_resid=float(np.quantile(resid, 0.5)),
        length_p90_resid=float(np.quantile(resid, 0.9)),
        bucket_edges=edges,
        bucket_log_p50=tuple(reps50),
        bucket_log_p90=tuple(reps90),
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
        lexical_intercept=intercept,
        phrase_buckets=PHRASE_BUCKETS,
        phrase_intercept=phrase_intercept,
        p50_shift=p50_shift,
        p90_shift=p90_shift,
        known_models=known,
        settings=PredictorSettings(),
        baselines=base,
        training={
            "config": cfg.__dict__,
            "train_rows": int(tr.sum()),
            "heldout_rows": int(row_test.sum()),
            "train_prompts": int(len(set(np.asarray(table.groups)[~req_test]))),
            "heldout_prompts": int(len(set(np.asarray(table.groups)[req_test]))),
            "train_rows_by_source": sources,
            "data_fingerprint": fingerprint,
            "lightgbm": lgb.__version__,
        },
    )
    artifact = Artifact(
        meta=meta,
        boosters={"p50": b50, "p90": b90, "reasoning": breason, "buckets": bbuckets},
        lexical_weights=weights,
        phrase_weights=phrase_weights,
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
