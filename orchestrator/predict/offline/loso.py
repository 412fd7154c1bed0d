"""Leave-one-source-out evaluation: how the predictor does on traffic it was never trained on.

For each source, `fit_core` (the shipped pipeline) is fitted on the other sources and scored
on the left-out one, with every row's answering model as its profile: a model that also
answers in a training source gets its learned factor as prior (what `Predictor.prior_for`
gives a profile of that family); an unseen model gets none. The baselines are fitted on the
same rows. Three modes per source:
- `offline`: no in-source data at all;
- `online`: the same, but each profile's calibration (offset + adaptive-conformal p90 shift)
  learns from the rows before it, in shuffled order, as `Predictor.observe` does in a server;
- learning curve: after N labelled rows of the source (prompts drawn at random, evaluated on
  a fixed set of the other prompts): calibration only (`predictor learn`), and calibration
  plus a refit with those rows as traffic (`predictor train --from-traffic`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np

from orchestrator.predict.calibration import (
    CalibrationConfig,
    ProfileCalibration,
    observe,
    recalibrate_p90,
)
from orchestrator.predict.offline.boosters import lgb_params
from orchestrator.predict.offline.fit import Fitted, TrainConfig, fit_core
from orchestrator.predict.offline.importance import ImportanceConfig, toward_source
from orchestrator.predict.offline.metrics import summarize
from orchestrator.predict.offline.table import TRAFFIC_SOURCE, Table
from orchestrator.predict.predictor import normalize_model_name

METHODS = ("model", "constant_median", "length_regression", "bucket_classifier", "ngram_ridge")
CURVE = (0, 100, 300, 1000)
_MAX_LOG = math.log1p(1_000_000)


@dataclass(frozen=True)
class KnownPrior:
    log_offset: float
    p90_shift: float


def known_priors(fitted: Fitted, table: Table, train_rows: np.ndarray) -> dict[str, KnownPrior]:
    """Each training model's factor and extra p90 shift (from out-of-fold residuals)."""
    out: dict[str, KnownPrior] = {}
    y = fitted.target
    q50 = np.clip(fitted.oof50 + fitted.p50_shift, 0.0, None)
    cls = fitted.class_of(np.nan_to_num(q50))
    base90 = fitted.oof90 + np.asarray(fitted.class_shifts)[cls]
    for name in sorted(set(table.row_model[train_rows])):
        if name.startswith("traffic:"):
            continue
        m = train_rows & (table.row_model == name) & np.isfinite(fitted.oof90)
        off = fitted.offsets.get(name, 0.0)
        shift = float(np.quantile(y[m] - base90[m], 0.9)) if m.any() else 0.0
        out[name] = KnownPrior(off, shift)
    return out


def _prior_lookup(priors: dict[str, KnownPrior]) -> Callable[[str], KnownPrior]:
    by_norm = {normalize_model_name(k): v for k, v in priors.items()}

    def lookup(model: str) -> KnownPrior:
        return by_norm.get(normalize_model_name(model), KnownPrior(0.0, 0.0))

    return lookup


def _tokens(log_values: np.ndarray) -> np.ndarray:
    return np.maximum(1, np.round(np.expm1(np.clip(log_values, 0.0, _MAX_LOG))))


@dataclass
class Baselines:
    const: tuple[float, float]
    length: tuple[float, float, float, float]  # a, b, p50 resid, p90 resid
    ridge: tuple[float, float]  # p50, p90 residual shifts of the phrase-ridge score
    bucket: lgb.Booster
    bucket_reps: tuple[tuple[float, float], ...]
    edges: tuple[int, ...]


def fit_baselines(fitted: Fitted, table: Table, tr: np.ndarray, cfg: TrainConfig) -> Baselines:
    from orchestrator.predict.offline.baselines import bucket_of

    yt = fitted.target[tr]
    w = fitted.row_weight[tr]
    x = fitted.x_req[table.row_request[tr]]
    from orchestrator.predict.offline.boosters import weighted_quantile as wq

    const = (wq(yt, 0.5, w), wq(yt, 0.9, w))
    design = np.column_stack([np.ones(len(yt)), x[:, 0]])
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(design * sw[:, None], yt * sw, rcond=None)[0]
    resid = yt - design @ coef
    length = (float(coef[0]), float(coef[1]), wq(resid, 0.5, w), wq(resid, 0.9, w))
    ridge_resid = yt - x[:, -1]
    ridge = (wq(ridge_resid, 0.5, w), wq(ridge_resid, 0.9, w))
    tokens_all = table.row_tokens[tr]
    edges = tuple(int(round(v)) for v in np.quantile(tokens_all, [0.2, 0.4, 0.6, 0.8]))
    labels = bucket_of(np.expm1(yt), edges)
    booster = lgb.train(
        lgb_params(cfg, objective="multiclass", num_class=5, num_leaves=7),
        lgb.Dataset(x, labels, weight=w),
        num_boost_round=80,
    )
    reps = []
    for k in range(5):
        sel = labels == k
        sel = sel if sel.any() else np.ones(len(yt), dtype=bool)
        reps.append((wq(yt[sel], 0.5, w[sel]), wq(yt[sel], 0.9, w[sel])))
    return Baselines(const, length, ridge, booster, tuple(reps), edges)


def predict_methods(
    fitted: Fitted, base: Baselines, table: Table, rows: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Profile-free log1p (p50, p90) per method for `rows` (no offsets)."""
    reqs = table.row_request[rows]
    x = fitted.x_req[reqs]
    q50, q90 = fitted.predict_requests(reqs)
    n = len(rows)
    a, b, r50, r90 = base.length
    centre = a + b * x[:, 0]
    probs = base.bucket.predict(x, num_threads=1)
    k = np.argmax(probs, axis=1)
    reps = np.asarray(base.bucket_reps)
    return {
        "model": (q50, q90),
        "constant_median": (np.full(n, base.const[0]), np.full(n, base.const[1])),
        "length_regression": (centre + r50, np.maximum(centre + r90, centre + r50)),
        "bucket_classifier": (reps[k, 0], reps[k, 1]),
        "ngram_ridge": (x[:, -1] + base.ridge[0], x[:, -1] + base.ridge[1]),
    }


def _online(
    q50: np.ndarray,
    q90: np.ndarray,
    models: np.ndarray,
    actual: np.ndarray,
    prior: Callable[[str], KnownPrior],
    cal_cfg: CalibrationConfig,
    states: dict[str, ProfileCalibration] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, ProfileCalibration]]:
    """Prequential predictions: each row is predicted with its profile's calibration so far,
    then observed. Returns log1p (p50, p90) and the final states."""
    states = dict(states or {})
    out50 = np.empty(len(q50))
    out90 = np.empty(len(q50))
    for i in range(len(q50)):
        name = str(models[i])
        cal = states.get(name)
        if cal is None:
            p = prior(name)
            cal = ProfileCalibration(prior_offset=p.log_offset, p90_shift=p.p90_shift)
        off = cal.log_offset(cal_cfg)
        out50[i] = q50[i] + off
        out90[i] = max(q90[i] + off + cal.p90_shift, out50[i])
        states[name] = observe(cal, float(q50[i]), float(q90[i]), int(actual[i]), 0, cal_cfg)
    return out50, out90, states


def _static(
    q50: np.ndarray,
    q90: np.ndarray,
    models: np.ndarray,
    prior: Callable[[str], KnownPrior],
    cal_cfg: CalibrationConfig,
    states: dict[str, ProfileCalibration] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions with a fixed calibration per profile (learned state, else the prior)."""
    off = np.empty(len(q50))
    shift = np.empty(len(q50))
    for name in np.unique(models):
        sel = models == name
        cal = (states or {}).get(str(name))
        if cal is None:
            p = prior(str(name))
            off[sel], shift[sel] = p.log_offset, p.p90_shift
        else:
            off[sel], shift[sel] = cal.log_offset(cal_cfg), cal.p90_shift
    return q50 + off, np.maximum(q90 + off + shift, q50 + off)


def _metrics(actual: np.ndarray, l50: np.ndarray, l90: np.ndarray, edges) -> dict[str, float]:
    return summarize(actual, _tokens(l50), _tokens(l90), edges)


@dataclass(frozen=True)
class LosoConfig:
    train: TrainConfig = TrainConfig()
    curve: tuple[int, ...] = ()  # labelled-row counts for the learning curve (0 included)
    refit_curve: bool = True
    sources: tuple[str, ...] | None = None  # default: every offline source in the table
    eval_fraction: float = 0.5  # learning curve: share of prompts kept for evaluation
    # the training rows weighted toward each left-out source's prompts (its unlabelled
    # traffic, as `predictor learn --refit --unlabelled` does for a deployment); None: off
    importance: ImportanceConfig | None = field(default=None, repr=False)  # keys: cli._run_loso


def _curve_split(
    table: Table, rows: np.ndarray, seed: int, eval_fraction: float
) -> tuple[list[np.ndarray], np.ndarray]:
    """Prompts of the source in a seeded random order; the last `eval_fraction` are the fixed
    evaluation set; returns the labelled-candidate rows in prompt order and the eval rows."""
    groups = sorted({table.groups[table.row_request[i]] for i in rows})
    random.Random(seed).shuffle(groups)
    n_eval = max(1, int(round(eval_fraction * len(groups))))
    eval_groups = set(groups[-n_eval:])
    by_group: dict[str, list[int]] = {}
    for i in rows:
        by_group.setdefault(table.groups[table.row_request[i]], []).append(int(i))
    ordered = [np.asarray(by_group[g]) for g in groups[:-n_eval]]
    eval_rows = np.asarray(sorted(i for g in eval_groups for i in by_group[g]))
    return ordered, eval_rows


def _as_traffic(table: Table, rows: np.ndarray, offsets: dict[str, float]) -> Table:
    """The table with `rows` relabelled as a deployment's traffic (profile = answering model)."""
    models = table.row_model.copy().astype(object)
    sources = table.row_source.copy().astype(object)
    fixed = dict(table.fixed_offsets)
    for i in rows:
        name = str(table.row_model[i])
        models[i] = f"traffic:{name}"
        sources[i] = TRAFFIC_SOURCE
        fixed[f"traffic:{name}"] = offsets.get(name, 0.0)
    return replace(
        table, row_model=models.astype(str), row_source=sources.astype(str), fixed_offsets=fixed
    )


def score_split(
    table: Table,
    tr: np.ndarray,
    rows: np.ndarray,
    cfg: TrainConfig,
    cal_cfg: CalibrationConfig,
    request_scale: np.ndarray | None = None,
) -> tuple[dict[str, Any], Fitted, Callable[[str], KnownPrior], Baselines]:
    """Fit on `tr` (`request_scale`: `fit_core`'s), score `rows`: metrics per method (answering
    model's prior as profile calibration) and the model with online calibration (rows in
    seeded shuffled order)."""
    fitted = fit_core(table, tr, cfg, request_scale=request_scale)
    base = fit_baselines(fitted, table, tr, cfg)
    prior = _prior_lookup(known_priors(fitted, table, tr))
    models = table.row_model[rows]
    actual = table.row_tokens[rows]
    preds = predict_methods(fitted, base, table, rows)
    entry: dict[str, Any] = {"rows": len(rows), "offline": {}, "online": {}}
    for method, (l50, l90) in preds.items():
        if method == "model":
            s50, s90 = _static(l50, l90, models, prior, cal_cfg)
        else:  # baselines get the model's factor, no p90 prior shift
            off = np.array([prior(str(m)).log_offset for m in models])
            s50, s90 = l50 + off, l90 + off
        entry["offline"][method] = _metrics(actual, s50, s90, base.edges)
    order = np.random.default_rng(cfg.seed).permutation(len(rows))
    o50, o90, _ = _online(
        preds["model"][0][order],
        preds["model"][1][order],
        models[order],
        actual[order],
        prior,
        cal_cfg,
    )
    entry["online"]["model"] = _metrics(actual[order], o50, o90, base.edges)
    return entry, fitted, prior, base


def loso(
    table: Table, cfg: LosoConfig = LosoConfig(), progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """Per left-out source: metrics per method (offline), the model online, and the curve."""
    cal_cfg = CalibrationConfig()
    all_sources = sorted(set(table.row_source) - {TRAFFIC_SOURCE})
    sources = list(cfg.sources or all_sources)
    result: dict[str, Any] = {"sources": {}, "config": dict(cfg.train.__dict__)}
    for n, src in enumerate(sources, start=1):
        started = time.perf_counter()
        tr = (table.row_source != src) & (table.row_source != TRAFFIC_SOURCE)
        rows = np.where(table.row_source == src)[0]
        scale = None
        if cfg.importance is not None:
            scale = toward_source(table, tr, src, cfg.importance)
        entry, fitted, prior, base = score_split(table, tr, rows, cfg.train, cal_cfg, scale)
        if cfg.curve:
            entry["curve"] = _learning_curve(
                table, src, rows, fitted, prior, cfg, cal_cfg, base.edges
            )
        result["sources"][src] = entry
        m = entry["offline"]["model"]
        progress(
            f"[{n}/{len(sources)}] left out {src}: tau {m['kendall_tau']:.3f} "
            f"p90 cov {m['p90_coverage']:.3f} online cov "
            f"{entry['online']['model']['p90_coverage']:.3f} "
            f"({time.perf_counter() - started:.0f} s)"
        )
    result["mean"] = _means(result["sources"])
    return result


def _learning_curve(
    table: Table,
    src: str,
    rows: np.ndarray,
    fitted: Fitted,
    prior: Callable[[str], KnownPrior],
    cfg: LosoConfig,
    cal_cfg: CalibrationConfig,
    edges: tuple[int, ...],
) -> dict[str, Any]:
    ordered, eval_rows = _curve_split(table, rows, cfg.train.seed, cfg.eval_fraction)
    tr_offline = (table.row_source != src) & (table.row_source != TRAFFIC_SOURCE)
    out: dict[str, Any] = {"eval_rows": len(eval_rows), "points": []}
    e50, e90 = fitted.predict_requests(table.row_request[eval_rows])
    models_eval = table.row_model[eval_rows]
    actual_eval = table.row_tokens[eval_rows]
    available = sum(len(g) for g in ordered)
    for n_labels in cfg.curve:
        take: list[int] = []
        for g in ordered:
            if len(take) >= n_labels:
                break
            take.extend(g.tolist())
        labelled = np.asarray(take[:n_labels], dtype=np.int64)
        point: dict[str, Any] = {"requested": n_labels, "labelled": len(labelled)}
        if n_labels and len(labelled) < n_labels:
            point["note"] = f"source has {available} labelled-candidate rows"
        lq50, lq90 = fitted.predict_requests(table.row_request[labelled])
        _, _, states = _online(
            lq50, lq90, table.row_model[labelled], table.row_tokens[labelled], prior, cal_cfg
        )
        states = _recalibrated(
            states, lq90, table.row_model[labelled], table.row_tokens[labelled], cal_cfg
        )
        s50, s90 = _static(e50, e90, models_eval, prior, cal_cfg, states)
        point["learn"] = _metrics(actual_eval, s50, s90, edges)
        if cfg.refit_curve and len(labelled):
            offsets = {k: v.log_offset(cal_cfg) for k, v in states.items()}
            t2 = _as_traffic(table, labelled, offsets)
            tr2 = tr_offline.copy()
            tr2[labelled] = True
            refit = fit_core(t2, tr2, cfg.train, conformal_from=fitted)
            rq50, rq90 = refit.predict_requests(table.row_request[labelled])
            _, _, states2 = _online(
                rq50, rq90, table.row_model[labelled], table.row_tokens[labelled], prior, cal_cfg
            )
            states2 = _recalibrated(
                states2, rq90, table.row_model[labelled], table.row_tokens[labelled], cal_cfg
            )
            f50, f90 = refit.predict_requests(table.row_request[eval_rows])
            r50, r90 = _static(f50, f90, models_eval, prior, cal_cfg, states2)
            point["refit"] = _metrics(actual_eval, r50, r90, edges)
        out["points"].append(point)
    return out


def _recalibrated(
    states: dict[str, ProfileCalibration],
    q90: np.ndarray,
    models: np.ndarray,
    actual: np.ndarray,
    cal_cfg: CalibrationConfig,
) -> dict[str, ProfileCalibration]:
    """Each profile's p90 set by split conformal on its labelled rows, as `learn` does."""
    out = dict(states)
    for name in np.unique(models):
        sel = models == name
        out[str(name)] = recalibrate_p90(
            states[str(name)], q90[sel].tolist(), actual[sel].tolist(), cal_cfg
        )
    return out


def _means(per_source: dict[str, Any]) -> dict[str, Any]:
    """Unweighted mean over sources of every metric (each source counts once)."""
    out: dict[str, Any] = {"offline": {}, "online": {}}
    entries = list(per_source.values())
    for mode in ("offline", "online"):
        for method in entries[0][mode]:
            keys = entries[0][mode][method].keys()
            out[mode][method] = {
                k: float(np.mean([e[mode][method][k] for e in entries])) for k in keys if k != "n"
            }
    if all("curve" in e for e in entries):
        points = []
        for j, p in enumerate(entries[0]["curve"]["points"]):
            avg: dict[str, Any] = {"requested": p["requested"]}
            for kind in ("learn", "refit"):
                got = [e["curve"]["points"][j].get(kind) for e in entries]
                if all(g is not None for g in got):
                    avg[kind] = {
                        k: float(np.mean([g[k] for g in got]))
                        for k in ("kendall_tau", "p90_coverage", "mae_log")
                    }
            points.append(avg)
        out["curve"] = points
    return out


def format_loso(result: dict[str, Any]) -> str:
    """The leave-one-source-out table: tau and p90 coverage per source and method, means."""
    per = result["sources"]
    names = list(per)
    methods = list(next(iter(per.values()))["offline"])
    head = f"{'method':<20}" + "".join(f"{n[:14]:>16}" for n in names) + f"{'mean':>16}"
    lines = ["Kendall tau / p90 coverage, each source left out (trained on the others)", head]
    mean = result["mean"]
    for method in methods:
        cells = "".join(
            f"{per[n]['offline'][method]['kendall_tau']:>9.3f} /{per[n]['offline'][method]['p90_coverage']:.2f}"
            for n in names
        )
        m = mean["offline"][method]
        lines.append(f"{method:<20}{cells}{m['kendall_tau']:>9.3f} /{m['p90_coverage']:.2f}")
    cells = "".join(
        f"{per[n]['online']['model']['kendall_tau']:>9.3f} /{per[n]['online']['model']['p90_coverage']:.2f}"
        for n in names
    )
    m = mean["online"]["model"]
    lines.append(
        f"{'model, online cal.':<20}{cells}{m['kendall_tau']:>9.3f} /{m['p90_coverage']:.2f}"
    )
    if "curve" in mean:
        lines.append("")
        lines.append("learning curve (labelled rows of the left-out source; tau / p90 coverage)")
        for j, p in enumerate(mean["curve"]):
            row = f"  N={p['requested']:<5}"
            for kind in ("learn", "refit"):
                if kind in p:
                    cells = "".join(
                        f"{per[n]['curve']['points'][j][kind]['kendall_tau']:>7.3f}/"
                        f"{per[n]['curve']['points'][j][kind]['p90_coverage']:.2f}"
                        for n in names
                        if kind in per[n]["curve"]["points"][j]
                    )
                    row += f" {kind}: {cells}  mean {p[kind]['kendall_tau']:.3f}/{p[kind]['p90_coverage']:.2f}"
            lines.append(row)
    return "\n".join(lines)


def loso_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Tau and p90 coverage per source and method, and their means (rounded; for meta.json)."""

    def pick(m: dict[str, float]) -> dict[str, float]:
        return {k: round(m[k], 4) for k in ("kendall_tau", "p90_coverage", "mae_log")}

    out: dict[str, Any] = {"sources": {}, "mean": {}}
    for src, entry in result["sources"].items():
        out["sources"][src] = {
            **{method: pick(m) for method, m in entry["offline"].items()},
            "model_online": pick(entry["online"]["model"]),
        }
    mean = result["mean"]
    out["mean"] = {
        **{method: pick(m) for method, m in mean["offline"].items()},
        "model_online": pick(mean["online"]["model"]),
    }
    return out
