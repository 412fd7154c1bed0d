"""The predictor's core fit on a table, shared by `train` (the shipped artifact) and the
leave-one-source-out evaluation, so what is evaluated is what ships.

Steps, on the rows selected for training:
1. answering-model factors: y ~ request + model (alternating means), y = log1p(tokens);
2. two ridge models (token ids, hashed phrases) on per-request mean targets, stacked
   out-of-fold; the folds are the training *sources* when there are several (a source never
   scores itself, so the boosters learn how far a ridge score carries to unseen traffic),
   else prompt-hash folds;
3. LightGBM quantile boosters (alpha 0.5, 0.9) on the dense features + the two scores;
   a ridge on the request's pretrained token embeddings (`embedding.py`), out of fold too,
   is added to both quantiles with weight `embedding_blend`;
4. conformalised quantile regression: out-of-fold (same folds) residuals give the p50 shift and
   one p90 shift per predicted-length class (Mondrian), each source weighted equally.
Row weights: each source's rows can be down-weighted toward equal source mass
(`source_balance`), and traffic rows count `traffic_weight` times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import lightgbm as lgb
import numpy as np

from orchestrator.predict import lexical
from orchestrator.predict.offline.boosters import (
    median_booster,
    quantile_booster,
    weighted_quantile,
)
from orchestrator.predict.offline.config import TrainConfig
from orchestrator.predict.offline.consistent import drop_disagreeing
from orchestrator.predict.offline.stack import blend_weights
from orchestrator.predict.offline.table import TRAFFIC_SOURCE, Table
from orchestrator.predict.offline.targets import rescale_sources
from orchestrator.predict.phrases import PHRASE_BUCKETS
from orchestrator.predict.prompt_type import (
    PromptTerms,
    fit_cue_term,
    fit_type_term,
    math_problems,
)

VOCAB_SIZE = 49152  # SmolLM2 tokenizer
# the shared sources closest to everyday chat (instructions, arena users' prompts, MT-Bench)
CHAT_SOURCES = frozenset({"alpaca_eval", "arena_hard_v01", "mt_bench"})


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


def prompt_fold(group: str, seed: int, folds: int) -> int:
    return int(hashlib.sha256(f"fold:{seed}:{group}".encode()).hexdigest()[:8], 16) % folds


@dataclass(frozen=True)
class ConformalShifts:
    """What a quick refit reuses of an earlier fit's conformal step (`fit_core`)."""

    p50_shift: float = 0.0
    class_edges: tuple[float, ...] = ()
    class_shifts: tuple[float, ...] = (0.0,)


@dataclass
class Fitted:
    """A core fit. `x_req` is every request's booster input (out-of-fold ridge scores on the
    training requests, full-fit scores elsewhere); `oof50/oof90` are out-of-fold booster
    outputs on training rows (NaN elsewhere)."""

    offsets: dict[str, float]
    lexical: tuple[np.ndarray, float]
    phrase: tuple[np.ndarray, float]
    x_req: np.ndarray
    b50: lgb.Booster
    b90: lgb.Booster
    p50_shift: float
    class_edges: tuple[float, ...]  # inner edges on the shifted log p50
    class_shifts: tuple[float, ...]  # one p90 shift per class
    oof50: np.ndarray
    oof90: np.ndarray
    row_weight: np.ndarray
    folds: np.ndarray  # per request, -1 when not training
    source_levels: dict[str, float]
    target: np.ndarray  # per row: the profile-free training target (NaN off training rows)
    # token-embedding ridge folded to one weight per token id, its intercept, its blend
    # weight and each request's score (out of fold on training requests)
    embedding: tuple[np.ndarray, float] = (np.zeros(0, dtype=np.float32), 0.0)
    embedding_blend: float = 0.0
    emb_req: np.ndarray | None = None
    # what is added beside the boosters (`prompt_type.py`; None: `embedding_blend` x the
    # embedding score) and the dense features its prompt types are read from (R x F)
    terms: PromptTerms | None = None
    vectors: np.ndarray | None = None

    def blend(self, reqs: np.ndarray) -> np.ndarray:
        """What the embedding ridge and the type terms add to both log quantiles."""
        terms = self.terms
        if terms is None or not terms.typed:
            if self.emb_req is None or not self.embedding_blend:
                return np.zeros(len(reqs))
            return self.embedding_blend * self.emb_req[reqs]
        assert self.vectors is not None
        scores = self.emb_req[reqs] if self.emb_req is not None else np.zeros(len(reqs))
        return terms.add(self.vectors[reqs], scores)

    def class_of(self, log_p50: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.class_edges), log_p50, side="right")

    def predict_requests(self, reqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Profile-free calibrated log1p quantiles (p50, p90) of requests, as the runtime does."""
        x = self.x_req[reqs]
        extra = self.blend(reqs)
        q50 = np.clip(self.b50.predict(x, num_threads=1) + extra + self.p50_shift, 0.0, None)
        shifts = np.asarray(self.class_shifts)[self.class_of(q50)]
        q90 = np.maximum(self.b90.predict(x, num_threads=1) + extra + shifts, q50)
        return q50, q90


def row_weights(
    table: Table,
    train_rows: np.ndarray,
    cfg: TrainConfig,
    request_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Training weight per row: sources toward equal mass, traffic counted `traffic_weight`x,
    times `request_scale` of the row's request when given (R: importance weights toward a
    deployment's unlabelled traffic, `offline/importance.py`). Normalised to mean 1 over
    training rows (0 elsewhere)."""
    w = np.zeros(len(train_rows))
    sources, counts = np.unique(table.row_source[train_rows], return_counts=True)
    for src, n in zip(sources, counts, strict=True):
        sel = train_rows & (table.row_source == src)
        w[sel] = float(n) ** -cfg.source_balance * (cfg.chat_weight if src in CHAT_SOURCES else 1.0)
        if src == TRAFFIC_SOURCE:
            offline = train_rows & (table.row_source != TRAFFIC_SOURCE)
            typical = w[offline].mean() if offline.any() else 1.0
            w[sel] = typical * cfg.traffic_weight
    if request_scale is not None:
        w = w * np.asarray(request_scale, dtype=np.float64)[table.row_request]
    if train_rows.any():
        w[train_rows] /= w[train_rows].mean()
    return w


def request_folds(table: Table, train_rows: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """Fold of each training request: its source's index when training spans several sources
    and `stack_folds == "source"`, else a prompt-hash fold; -1 for non-training requests."""
    req_src = table.request_source
    reqs = np.unique(table.row_request[train_rows])
    folds = np.full(len(table.groups), -1, dtype=np.int64)
    sources = sorted(set(req_src[reqs]))
    if cfg.stack_folds == "source" and len(sources) > 1:
        index = {s: i for i, s in enumerate(sources)}
        folds[reqs] = [index[s] for s in req_src[reqs]]
    else:
        folds[reqs] = [prompt_fold(table.groups[i], cfg.seed, cfg.folds) for i in reqs]
    return folds


def _ridge_scores(
    id_sets: list[np.ndarray],
    req_target: np.ndarray,
    req_weight: np.ndarray,
    folds: np.ndarray,
    width: int,
    damp: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Out-of-fold ridge scores on training requests (folds >= 0), full-fit scores on the rest,
    and the full fit."""
    train_reqs = np.where(folds >= 0)[0]
    scores = np.zeros(len(id_sets))

    def fit(reqs: np.ndarray) -> tuple[np.ndarray, float]:
        return lexical.fit_ridge(
            [id_sets[i] for i in reqs], req_target[reqs], width, damp, req_weight[reqs]
        )

    for k in np.unique(folds[train_reqs]):
        w, b = fit(train_reqs[folds[train_reqs] != k])
        for i in train_reqs[folds[train_reqs] == k]:
            scores[i] = lexical.score(id_sets[i], w, b)
    weights, intercept = fit(train_reqs)
    for i in np.where(folds < 0)[0]:
        scores[i] = lexical.score(id_sets[i], weights, intercept)
    return scores, weights, intercept


def _embedding_scores(
    table: Table,
    req_target: np.ndarray,
    req_weight: np.ndarray,
    folds: np.ndarray,
    damp: float,
    source: str = "smollm2",
) -> tuple[np.ndarray, np.ndarray, float]:
    """The token-embedding ridge: out-of-fold scores on training requests (folds >= 0),
    full-fit scores elsewhere, and the full fit folded to one weight per token id."""
    from orchestrator.predict.offline.embedding import (
        embedding_matrix,
        fit_dense_ridge,
        request_embeddings,
    )

    matrix = embedding_matrix(source)
    x = request_embeddings(table.lexical_ids, matrix)
    train_reqs = np.where(folds >= 0)[0]
    req_weight = req_weight / max(float(req_weight[train_reqs].mean()), 1e-12)  # damp per mean-1
    scores = np.zeros(len(x))
    for k in np.unique(folds[train_reqs]):
        fit = train_reqs[folds[train_reqs] != k]
        held = train_reqs[folds[train_reqs] == k]
        beta, b = fit_dense_ridge(x[fit], req_target[fit], req_weight[fit], damp)
        scores[held] = x[held] @ beta + b
    beta, b = fit_dense_ridge(x[train_reqs], req_target[train_reqs], req_weight[train_reqs], damp)
    rest = np.where(folds < 0)[0]
    scores[rest] = x[rest] @ beta + b
    return scores, (matrix @ beta).astype(np.float32), b


def _learned_blend(
    cfg: TrainConfig,
    x: np.ndarray,
    yt: np.ndarray,
    w: np.ndarray,
    tr: np.ndarray,
    row_fold: np.ndarray,
    src: np.ndarray,
    emb_req: np.ndarray,
    embedding: tuple[np.ndarray, float],
    lex: np.ndarray,
    lexical_fit: tuple[np.ndarray, float],
    rr: np.ndarray,
    say: Callable[[str], None],
) -> tuple[np.ndarray, tuple[np.ndarray, float]]:
    """The embedding and token-id ridge scores folded into one token-weight term, weighted by
    an out-of-fold fit of what the p50 boosters miss (`stack.blend_weights`)."""
    oof = np.full(len(yt), np.nan)
    for k in np.unique(row_fold[tr]):
        fit, held = tr & (row_fold != k), tr & (row_fold == k)
        oof[held] = median_booster(cfg, x[fit], yt[fit], w[fit], src[fit]).predict(x[held])
    scores = np.column_stack([emb_req[rr], lex[rr]])
    we, wl = blend_weights(yt[tr] - oof[tr], scores[tr], src[tr], w[tr])
    say(f"blend weights: embedding ridge {we:.3f}, token-id ridge {wl:.3f}")
    weights = (we * embedding[0] + wl * lexical_fit[0]).astype(np.float32)
    return we * emb_req + wl * lex, (weights, we * embedding[1] + wl * lexical_fit[1])


def _at(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[rows]


def fit_core(
    table: Table,
    train_rows: np.ndarray,
    cfg: TrainConfig,
    conformal_from: Fitted | ConformalShifts | None = None,
    progress: Callable[[str], None] | None = None,
    request_scale: np.ndarray | None = None,
) -> Fitted:
    """Fit factors, ridges, boosters and the conformal shifts on `train_rows` (bool, N).

    `request_scale` (R, optional): a factor on every row weight of a request (importance
    weights toward a deployment's unlabelled traffic, `importance.py`).

    `conformal_from`: reuse that fit's p50 shift and p90 classes instead of refitting the
    out-of-fold boosters (a quick refit; the learning curve uses it). `progress` receives a
    line per stage."""
    say = progress or (lambda line: None)
    y = table.row_y
    tr = np.asarray(train_rows, dtype=bool)
    anchors = set(table.row_model[tr & (table.row_source == "alpaca_eval")])
    offsets = fixed_effects(
        y[tr], table.row_request[tr], table.row_model[tr], anchors, table.fixed_offsets
    )
    row_off = np.array([offsets.get(m, 0.0) for m in table.row_model])
    yt = y - row_off
    w = row_weights(table, tr, cfg, request_scale)
    levels: dict[str, float] = {}
    if cfg.source_levels:
        for src in sorted(set(table.row_source[tr])):
            sel = tr & (table.row_source == src)
            levels[src] = float(np.average(yt[sel], weights=w[sel]))
        grand = float(np.mean(list(levels.values())))
        for src, level in levels.items():
            yt = np.where(table.row_source == src, yt - level + grand, yt)
    yt, _ = rescale_sources(yt, table.row_source, tr, w, cfg.source_scale)

    n_req = len(table.groups)
    rr = table.row_request
    wsum = np.bincount(rr[tr], w[tr], minlength=n_req)
    req_target = np.bincount(rr[tr], w[tr] * yt[tr], minlength=n_req) / np.maximum(wsum, 1e-12)
    req_rows = np.maximum(np.bincount(rr[tr], minlength=n_req), 1)
    req_weight = wsum / req_rows  # mean row weight: a prompt counts once per its source weight
    folds = request_folds(table, tr, cfg)
    say("ridge models (token ids, phrases), stacked out of fold")
    lex, lw, lb = _ridge_scores(
        table.lexical_ids, req_target, req_weight, folds, VOCAB_SIZE, cfg.lexical_damp
    )
    phr, pw, pb = _ridge_scores(
        table.phrase_ids, req_target, req_weight, folds, PHRASE_BUCKETS, cfg.phrase_damp
    )
    x_req = np.column_stack([table.vectors, lex, phr]).astype(np.float32)
    embedding: tuple[np.ndarray, float] = (np.zeros(0, dtype=np.float32), 0.0)
    emb_req = None
    if cfg.embedding_blend:
        say("token-embedding ridge, stacked out of fold")
        emb_weight = req_weight
        if cfg.embedding_rows == "chat":
            emb_weight = np.where(math_problems(table.vectors), 0.0, req_weight)
        emb_req, ew, eb = _embedding_scores(
            table, req_target, emb_weight, folds, cfg.embedding_damp, cfg.embedding_source
        )
        embedding = (ew, eb)
    x = x_req[rr]
    src = table.row_source
    blend_weight = cfg.embedding_blend
    if cfg.blend == "learned" and emb_req is not None:
        say("blend weights, out of source")
        emb_req, embedding = _learned_blend(
            cfg, x, yt, w, tr, folds[rr], src, emb_req, embedding, lex, (lw, lb), rr, say
        )
        blend_weight = 1.0
    extra_rows = blend_weight * emb_req[rr] if emb_req is not None else np.zeros(len(rr))
    init = None
    if cfg.booster_offset and emb_req is not None:
        base = PromptTerms(blend_weight, embedding[1], cfg.chat_blend)
        init = base.add(table.vectors[rr], emb_req[rr])
    if cfg.consistent_features:
        n_dense = table.vectors.shape[1]
        x = drop_disagreeing(x, x_req, n_dense, req_target, folds, table.request_source)
    say(f"quantile boosters p50, p90 ({cfg.rounds} rounds)")
    b50 = median_booster(cfg, x[tr], yt[tr], w[tr], src[tr], _at(init, tr))
    b90 = quantile_booster(cfg, x[tr], yt[tr], 0.9, w[tr], _at(init, tr))
    terms = PromptTerms(blend_weight if emb_req is not None else 0.0, embedding[1], cfg.chat_blend)
    scores = emb_req[rr] if emb_req is not None else np.zeros(len(rr))
    for kind in cfg.type_terms:
        say(f"{kind} requests: length term")
        resid = yt - b50.predict(x, num_threads=1) - terms.add(table.vectors[rr], scores)
        rsum = np.bincount(rr[tr], w[tr] * resid[tr], minlength=n_req)
        train_req = np.zeros(n_req, dtype=bool)
        train_req[rr[tr]] = True
        term = fit_type_term(
            kind,
            (rsum / np.maximum(wsum, 1e-12))[train_req],
            table.vectors[train_req],
            table.request_source[train_req],
            req_weight[train_req],
            level=cfg.type_levels,
        )
        say(f"  intercept {term[0]:.3f}, slope {term[1]:.3f}")
        terms = replace(terms, **{f"{kind}_term": term})
    if cfg.cue_terms:
        say("explicit length asks: cue term")
        resid = yt - b50.predict(x, num_threads=1) - terms.add(table.vectors[rr], scores)
        rsum = np.bincount(rr[tr], w[tr] * resid[tr], minlength=n_req)
        train_req = np.zeros(n_req, dtype=bool)
        train_req[rr[tr]] = True
        cue = fit_cue_term(
            (rsum / np.maximum(wsum, 1e-12))[train_req],
            table.vectors[train_req],
            table.request_source[train_req],
            req_weight[train_req],
        )
        say("  brief {:.3f}, long {:.3f}, requested {:.3f}, slope {:.3f}".format(*cue))
        terms = replace(terms, cue_term=cue)
    if terms.typed:
        extra_rows = terms.add(table.vectors[rr], scores)

    row_fold = folds[rr]
    oof50 = np.full(len(y), np.nan)
    oof90 = np.full(len(y), np.nan)
    if conformal_from is not None:
        c = conformal_from
        return Fitted(
            offsets=offsets,
            lexical=(lw, lb),
            phrase=(pw, pb),
            x_req=x_req,
            b50=b50,
            b90=b90,
            p50_shift=c.p50_shift,
            class_edges=c.class_edges,
            class_shifts=c.class_shifts,
            oof50=oof50,
            oof90=oof90,
            row_weight=w,
            folds=folds,
            source_levels=levels,
            target=np.where(tr, yt, np.nan),
            embedding=embedding,
            embedding_blend=blend_weight,
            emb_req=emb_req,
            terms=terms,
            vectors=table.vectors,
        )
    fold_ids = np.unique(row_fold[tr])
    for n, k in enumerate(fold_ids, start=1):
        say(f"conformal p90: out-of-fold boosters {n}/{len(fold_ids)}")
        fit = tr & (row_fold != k)
        held = tr & (row_fold == k)
        oof50[held] = median_booster(
            cfg, x[fit], yt[fit], w[fit], src[fit], _at(init, fit)
        ).predict(x[held])
        oof90[held] = quantile_booster(cfg, x[fit], yt[fit], 0.9, w[fit], _at(init, fit)).predict(
            x[held]
        )
    oof50 += extra_rows  # the blended quantiles, as predict_requests gives them
    oof90 += extra_rows
    # conformal weights: each fold (source) counts equally, whatever its size
    cw = np.zeros(len(y))
    for k in np.unique(row_fold[tr]):
        sel = tr & (row_fold == k)
        cw[sel] = 1.0 / sel.sum()
    p50_shift = weighted_quantile(yt[tr] - oof50[tr], 0.5, cw[tr])
    pred50 = np.clip(oof50 + p50_shift, 0.0, None)
    n_classes = max(1, cfg.conformal_classes)
    edges = tuple(
        weighted_quantile(pred50[tr], q, cw[tr]) for q in np.arange(1, n_classes) / n_classes
    )
    cls = np.searchsorted(np.asarray(edges), pred50, side="right")
    resid90 = yt - oof90
    shifts = []
    for c in range(n_classes):
        sel = tr & (cls == c)
        sel = sel if sel.sum() >= 30 else tr
        shifts.append(weighted_quantile(resid90[sel], 0.9, cw[sel]))
    return Fitted(
        offsets=offsets,
        lexical=(lw, lb),
        phrase=(pw, pb),
        x_req=x_req,
        b50=b50,
        b90=b90,
        p50_shift=p50_shift,
        class_edges=edges,
        class_shifts=tuple(shifts),
        oof50=oof50,
        oof90=oof90,
        row_weight=w,
        folds=folds,
        source_levels=levels,
        target=np.where(tr, yt, np.nan),
        embedding=embedding,
        embedding_blend=blend_weight,
        emb_req=emb_req,
        terms=terms,
        vectors=table.vectors,
    )
