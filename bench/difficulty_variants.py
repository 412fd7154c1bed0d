"""Variants of the difficulty model on the folds that leave whole MMLU subjects (and GSM8K,
MT-Bench as sources) out: which features carry across subjects, which calibration holds per
left-out subject, and what calibration error a perfectly calibrated model would still show on
subjects of this size (the sampling floor).

    nice -n 10 python bench/difficulty_variants.py [--variants base,tokens,...] [--json out.json]

Only the weak head ("the weak model answers well") is fitted: every figure the issue asks for
is about it. Calibration of a fold is fitted on the other folds' out-of-fold logits, as in
`orchestrator difficulty eval`. One process, no threads beyond numpy's.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from orchestrator.paths import SHARED_DATA
from orchestrator.predict.difficulty import OPTION_FEATURES, token_rarity, word_pieces
from orchestrator.predict.offline import difficulty_eval as ev
from orchestrator.predict.offline import difficulty_fit as fit
from orchestrator.predict.offline.difficulty_data import load_outcomes, outcomes_available

L2 = fit.L2
HASH_BITS = 14
DEFAULT_VARIANTS = (  # "base": the shipped features (`difficulty_fit.featurize`), one L2 for
    # every column; "shipped": the embedding's columns x EMBEDDING_L2, the others x FEATURE_L2;
    # "layer6": the format-4 artifact (MiniLM's output layer, others x1)
    "shipped",
    "base",
    "without_option_similarity",
    "qtype",
    "mc_interact",
    "mmlu_only",
    "split_embedding",
    "length_signal",
    "tokens_x30",
    "tokens_x300",
    "word_ngrams_x3",
    "subject_balanced",
    "sqrt_subject_balanced",
)
_WORD = re.compile(r"[a-z0-9]+")
_QTYPE = {
    "which": re.compile(r"\bwhich\b", re.I),
    "what": re.compile(r"\bwhat\b", re.I),
    "who_when_where": re.compile(r"\b(?:who|when|where)\b", re.I),
    "why_how": re.compile(r"\b(?:why|how)\b", re.I),
    "compute": re.compile(r"\b(?:calculate|compute|find|determine|evaluate|solve)\b", re.I),
    "passage": re.compile(r"\b(?:passage|following information|excerpt)\b", re.I),
    "true_statement": re.compile(r"\b(?:true|correct|best describes)\b", re.I),
    "negated": re.compile(r"\b(?:not|except|least|false|incorrect)\b", re.I),
}
_OPTIONS = re.compile(r"^[A-D][.)] ?(.*)$", re.MULTILINE)
_UNIT = re.compile(
    r"\d\s*(?:%|kg|g|mg|m|cm|mm|km|s|ms|min|h|J|kJ|W|kW|N|Pa|atm|K|mol|M|L|mL|V|A|Hz|"
    r"eV|C|°C|°F|\$|dollars?|years?|m/s)\b"
)
_FORMULA = re.compile(r"[\\^_]|\bsqrt\b|\blog\b|\bsin\b|\bcos\b|[a-z]\([a-z]\)")
_PASSAGE = re.compile(
    r"\b(?:passage|excerpt|following information|the following (?:text|poem|quote|statement)|"
    r"read the)\b",
    re.I,
)


def token_bag(t: fit.Table, vocab: int) -> sp.csr_matrix:
    """SIF-weighted mean of one-hot WordPiece tokens: free per-token weights fold into the
    shipped per-token score table (same runtime as the embedding)."""
    rows, cols, vals = [], [], []
    for i, ids in enumerate(t.token_ids):
        if not len(ids):
            continue
        w = t.token_weight[ids]
        u, inv = np.unique(ids, return_inverse=True)
        rows.append(np.full(len(u), i))
        cols.append(u)
        vals.append(np.bincount(inv, weights=w) / w.sum())
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(t.token_ids), vocab),
    )


def word_ngrams(texts: list[str]) -> sp.csr_matrix:
    """Hashed word unigrams and bigrams, binary, rows L2-normalised."""
    rows, cols = [], []
    for i, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        grams = set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}
        h = {zlib.crc32(g.encode()) & ((1 << HASH_BITS) - 1) for g in grams}
        rows += [i] * len(h)
        cols += list(h)
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), 1 << HASH_BITS))
    norm = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel()) + 1e-9
    return sp.diags(1 / norm) @ m


def question_type(texts: list[str]) -> np.ndarray:
    """Question words of the stem, options with digits, longest/shortest option ratio, the
    longest option's position (answer-option structure not in the shipped features)."""
    out = np.zeros((len(texts), len(_QTYPE) + 3))
    for i, text in enumerate(texts):
        m = _OPTIONS.search(text)
        stem = text[: m.start()] if m else text
        for k, rx in enumerate(_QTYPE.values()):
            out[i, k] = float(bool(rx.search(stem[-300:])))
        opts = _OPTIONS.findall(text)
        if len(opts) >= 2:
            sizes = np.array([len(o) for o in opts], float)
            out[i, -3] = np.mean([any(c.isdigit() for c in o) for o in opts])
            out[i, -2] = np.log((sizes.max() + 1) / (sizes.min() + 1))
            out[i, -1] = float(np.argmax(sizes)) / 3
    return out


def structure(t: fit.Table, texts: list[str], tokenizer_text: str) -> np.ndarray:
    """Structural features: token rarity (`token_rarity`, shipped since format 4), computation
    (units, formula marks, numbers in the stem, options with digits), option words (mean words per
    option, single-word options, sentence options), a reading passage (stem lines, passage
    words, stem longer than 600 characters)."""
    from tokenizers import Tokenizer

    piece = word_pieces(Tokenizer.from_str(tokenizer_text))
    out = np.zeros((len(texts), 14))
    for i, (text, ids) in enumerate(zip(texts, t.token_ids, strict=True)):
        out[i, :4] = token_rarity(ids, t.token_weight, piece)  # shipped since format 4
        m = _OPTIONS.search(text)
        stem = text[: m.start()] if m else text
        out[i, 4] = np.log1p(len(_UNIT.findall(text)))
        out[i, 5] = np.log1p(len(_FORMULA.findall(text)))
        out[i, 6] = np.log1p(len(re.findall(r"\d+", stem)))
        opts = _OPTIONS.findall(text)
        if len(opts) >= 2:
            nw = np.array([len(o.split()) for o in opts], float)
            out[i, 7] = np.mean([any(c.isdigit() for c in o) for o in opts])
            out[i, 8] = np.log1p(nw.mean())
            out[i, 9] = (nw <= 1).mean()
            out[i, 10] = np.mean([o.rstrip().endswith(".") for o in opts])
        out[i, 11] = np.log1p(stem.count("\n"))
        out[i, 12] = float(bool(_PASSAGE.search(stem)))
        out[i, 13] = float(len(stem) > 600)
    return out


def gbm_logits(x: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> np.ndarray:
    """A small LightGBM (one thread) on x[tr]; raw scores of x[te]."""
    import lightgbm as lgb

    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 80,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": 1,
        "verbose": -1,
        "seed": 0,
    }
    booster = lgb.train(params, lgb.Dataset(x[tr], y[tr]), num_boost_round=300)
    return booster.predict(x[te], raw_score=True)


def logistic(x, y: np.ndarray, l2: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """L2 logistic regression with a per-column penalty (dense or sparse x) and optional row
    weights (mean 1): weights, bias."""
    n, d = x.shape
    sw = np.ones(n) if weight is None else weight / weight.mean()

    def loss(wb: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = wb[:-1], wb[-1]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        value = float(np.mean(sw * (np.logaddexp(0.0, z) - y * z)) + 0.5 * (l2 * w) @ w)
        g = sw * (p - y) / n
        return value, np.concatenate([x.T @ g + l2 * w, [g.sum()]])

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x


# (train rows, test rows) -> (x_train, x_test, per-column L2, the train rows used)
Design = Callable[[np.ndarray, np.ndarray], tuple[object, object, np.ndarray, np.ndarray]]


def split_embedding(t: fit.Table, texts: list[str], static: np.ndarray) -> np.ndarray:
    """Two weighted-mean embeddings: the stem's and the options' (zeros without options)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(fit.tokenizer_json())
    tok.no_padding()
    tok.no_truncation()
    out = np.zeros((len(texts), 2 * static.shape[1]))
    for i, text in enumerate(texts):
        m = _OPTIONS.search(text)
        if m is None:
            continue
        for k, part in enumerate((text[: m.start()], text[m.start() :])):
            ids = np.asarray(tok.encode(part, add_special_tokens=False).ids, np.int64)
            if len(ids):
                w = t.token_weight[ids]
                out[i, k * static.shape[1] : (k + 1) * static.shape[1]] = w @ static[ids] / w.sum()
    return out


def length_signal(outcomes: list) -> np.ndarray:
    """The length predictor's view of each prompt: log p50 / p90 answer tokens, P(reasoning),
    log reasoning tokens (the shipped predictor artifact, no online calibration)."""
    from orchestrator.predict import Predictor

    predictor = Predictor(store=None, record_traffic=False)
    rows = []
    for o in outcomes:
        p = predictor.predict(o.request())
        rows.append(
            [
                np.log1p(p.p50_tokens),
                np.log1p(p.p90_tokens),
                p.reasoning_probability,
                np.log1p(p.reasoning_tokens),
            ]
        )
    return np.array(rows)


def layer_embedding(t: fit.Table, layer: int) -> np.ndarray:
    """The prompts' weighted-mean token vectors at MiniLM's hidden `layer`."""
    table = fit.static_table(layer)
    out = np.zeros((len(t.token_ids), table.shape[1]))
    for i, ids in enumerate(t.token_ids):
        if len(ids):
            w = t.token_weight[ids]
            out[i] = w @ table[ids] / w.sum()
    return out


def without_directions(emb: np.ndarray, directions: Callable) -> Callable:
    """(train rows) -> the embedding with `directions(train rows)` (k x d, orthonormal)
    projected out, fitted on the training rows only."""

    def make(tr: np.ndarray) -> np.ndarray:
        v, mu = directions(tr), emb[tr].mean(0)
        return emb - (emb - mu) @ v.T @ v

    return make


def top_components(emb: np.ndarray, k: int) -> Callable:
    """The training rows' top-k principal directions (what most separates prompts: topic)."""

    def directions(tr: np.ndarray) -> np.ndarray:
        return np.linalg.svd(emb[tr] - emb[tr].mean(0), full_matrices=False)[2][:k]

    return directions


def between_units(emb: np.ndarray, unit: np.ndarray, k: int) -> Callable:
    """The top-k directions of the training units' (subjects', sources') mean embeddings,
    each weighted by sqrt(rows): what separates subjects rather than items."""

    def directions(tr: np.ndarray) -> np.ndarray:
        names, inv = np.unique(unit[tr], return_inverse=True)
        cent = np.stack([emb[tr][inv == i].mean(0) for i in range(len(names))])
        scaled = (cent - emb[tr].mean(0)) * np.sqrt(np.bincount(inv))[:, None]
        return np.linalg.svd(scaled, full_matrices=False)[2][:k]

    return directions


def designs(
    t: fit.Table,
    texts: list[str],
    static: np.ndarray,
    only: set[str],
    outcomes: list | None = None,
) -> dict[str, Design]:
    """Each variant: (train rows, test rows) -> (x_train, x_test, per-column L2)."""
    vocab = static.shape[0]
    dense = np.hstack([t.embedding, t.lexical])
    is_mc = np.array([bool(_OPTIONS.search(x)) for x in texts], float)[:, None]
    qtype = question_type(texts)
    bag = token_bag(t, vocab) if any("tokens" in v for v in only) else None
    grams = word_ngrams(texts) if any("ngrams" in v for v in only) else None
    split = split_embedding(t, texts, static) if "split_embedding" in only else None
    length = length_signal(outcomes or []) if "length_signal" in only else None
    struct = structure(t, texts, fit.tokenizer_json()) if any("struct" in v for v in only) else None

    def standardized(*blocks: np.ndarray) -> Callable:
        x = np.hstack(blocks)

        def make(tr: np.ndarray, te: np.ndarray):
            mean, std = x[tr].mean(0), x[tr].std(0) + 1e-6
            return (x[tr] - mean) / std, (x[te] - mean) / std, np.full(x.shape[1], L2), tr

        return make

    def with_sparse(base: Callable, extra: sp.csr_matrix, scale: float) -> Design:
        def make(tr: np.ndarray, te: np.ndarray):
            a, b, l2, tr = base(tr, te)
            xs = extra * scale
            return (
                sp.hstack([sp.csr_matrix(a), xs[tr]]).tocsr(),
                sp.hstack([sp.csr_matrix(b), xs[te]]).tocsr(),
                np.concatenate([l2, np.full(extra.shape[1], L2)]),
                tr,
            )

        return make

    def mmlu_only(inner: Design) -> Design:
        """MMLU folds trained on MMLU rows only (other sources: as `inner`)."""

        def make(tr: np.ndarray, te: np.ndarray):
            if (t.source[te] == "mmlu").all():
                tr = tr[t.source[tr] == "mmlu"]
            return inner(tr, te)

        return make

    base = standardized(dense)

    def block_l2(inner: Callable, emb: float, rest: float, width: int | None = None) -> Design:
        """Per-block penalty: the first `width` (embedding) columns x emb, the others x rest."""
        width = t.embedding.shape[1] if width is None else width

        def make(tr: np.ndarray, te: np.ndarray):
            a, b, l2, tr = inner(tr, te)
            l2 = l2.copy()
            l2[:width] *= emb
            l2[width:] *= rest
            return a, b, l2, tr

        return make

    blocks = {  # "l2_emb3_rest0.3": the embedding's penalty x3, the other columns' x0.3
        n: block_l2(base, float(n.split("_emb")[1].split("_")[0]), float(n.split("_rest")[1]))
        for n in only
        if n.startswith("l2_emb")
    }
    plus_q = standardized(dense, qtype)
    out: dict[str, Design] = {
        "base": base,
        "shipped": block_l2(base, fit.EMBEDDING_L2, fit.FEATURE_L2),
        "without_option_similarity": standardized(dense[:, : -len(OPTION_FEATURES)]),
        "qtype": plus_q,
        "mc_interact": standardized(dense, is_mc, t.lexical * is_mc),
        "mmlu_only": mmlu_only(base),
        **blocks,
    }
    if split is not None:
        out["split_embedding"] = standardized(dense, split)
    if "maxpool" in only:  # the embedding's per-dimension max and min over the prompt's tokens
        pooled = np.zeros((len(texts), 2 * static.shape[1]))
        for i, ids in enumerate(t.token_ids):
            if len(ids):
                rows = static[ids]
                pooled[i] = np.concatenate([rows.max(0), rows.min(0)])
        out["maxpool"] = block_l2(standardized(dense, pooled), fit.EMBEDDING_L2, 1.0)
        out["maxpool_l2x3"] = block_l2(
            block_l2(standardized(dense, pooled), fit.EMBEDDING_L2, 1.0),
            1.0,
            3.0,
            dense.shape[1],
        )
    if length is not None:
        out["length_signal"] = standardized(dense, length)
    layered = {int(n[5]) for n in only if n.startswith("layer")}  # "layer1_rest0.3"
    if any(n.startswith(("pc_remove", "between_remove", "length_x3")) for n in only):
        layered.add(6)
    emb_at = {k: layer_embedding(t, k) for k in layered}
    for n in only:  # MiniLM's hidden layer n[5] for the embedding, the other columns x rest
        if n.startswith("layer"):
            rest = float(n.split("_rest")[1]) if "_rest" in n else 1.0
            out[n] = block_l2(standardized(emb_at[int(n[5])], t.lexical), fit.EMBEDDING_L2, rest)
    if 6 in emb_at:  # session 15's variants on the format-4 artifact (layer 6, others x1)
        emb6 = emb_at[6]

        def projected(strip: Callable) -> Design:
            def make(tr: np.ndarray, te: np.ndarray):
                x = np.hstack([strip(tr), t.lexical])
                mean, std = x[tr].mean(0), x[tr].std(0) + 1e-6
                l2 = np.full(x.shape[1], L2)
                l2[: emb6.shape[1]] *= fit.EMBEDDING_L2
                return (x[tr] - mean) / std, (x[te] - mean) / std, l2, tr

            return make

        for n in only:  # "pc_remove4", "between_remove5": directions projected out
            if n.startswith("pc_remove"):
                out[n] = projected(without_directions(emb6, top_components(emb6, int(n[9:]))))
            if n.startswith("between_remove"):
                k = int(n.removeprefix("between_remove"))
                out[n] = projected(without_directions(emb6, between_units(emb6, t.unit, k)))
        if "length_x3" in only:
            signal = length_signal(outcomes or [])
            out["length_x3"] = block_l2(
                standardized(emb6, t.lexical, signal), fit.EMBEDDING_L2, 1.0
            )
    if any(n.startswith("pca") for n in only):
        centred = static - static.mean(0)
        _, _, vt = np.linalg.svd(centred[::4].astype(np.float64), full_matrices=False)
        for n in only:  # "pca64_rest0.3[_struct]": the embedding on the static table's top PCs
            if n.startswith("pca"):
                k = int(n[3:].split("_")[0])
                rest = float(n.split("_rest")[1].split("_")[0])
                emb = (t.embedding - static.mean(0)) @ vt[:k].T
                extra = [structure(t, texts, fit.tokenizer_json())] if "struct" in n else []
                make = standardized(emb, t.lexical, *extra)
                out[n] = block_l2(make, 1.0, rest, k)
    if struct is not None:
        out["struct"] = standardized(dense, struct)
        out["struct_rarity"] = standardized(dense, struct[:, :4])
        out["struct_compute"] = standardized(dense, struct[:, 4:8])
        out["struct_options"] = standardized(dense, struct[:, 7:11])
        out["struct_passage"] = standardized(dense, struct[:, 11:])
        for n in only:  # "struct_l2_emb3_rest0.3", "struct_rarity_l2_emb3_rest1"
            if n.startswith("struct") and "_l2_emb" in n:
                emb, rest = float(n.split("_emb")[1].split("_")[0]), float(n.split("_rest")[1])
                out[n] = block_l2(out[n.split("_l2_emb")[0]], emb, rest)
    if bag is not None:
        for scale in (10, 30, 100, 300):
            out[f"tokens_x{scale}"] = with_sparse(base, bag, float(scale))
    if grams is not None:
        for scale in (1, 3, 10):
            out[f"word_ngrams_x{scale}"] = with_sparse(base, grams, float(scale))
    return out


def subject_weights(t: fit.Table) -> np.ndarray:
    """Every left-out unit (MMLU subject, source) weighs the same in training."""
    _, inv, counts = np.unique(t.unit, return_inverse=True, return_counts=True)
    return 1.0 / counts[inv]


def soft_labels(t: fit.Table, keep: float) -> np.ndarray:
    """Each label mixed with its unit's (subject's, source's) rate: keep x label + (1 - keep) x
    rate, so the embedding learns which topics are hard rather than which items."""
    y = t.labels["weak"]
    _, inv = np.unique(t.unit, return_inverse=True)
    rate = np.bincount(inv, weights=y) / np.bincount(inv)
    return keep * y + (1 - keep) * rate[inv]


def out_of_fold(
    t: fit.Table, make: Design, weight: np.ndarray | None = None, y: np.ndarray | None = None
) -> np.ndarray:
    y = t.labels["weak"] if y is None else y
    raw = np.zeros(len(y))
    for k in sorted(set(t.fold.tolist())):
        te, tr = np.flatnonzero(t.fold == k), np.flatnonzero(t.fold != k)
        xtr, xte, l2, tr = make(tr, te)
        wb = logistic(xtr, y[tr], l2, None if weight is None else weight[tr])
        raw[te] = xte @ wb[:-1] + wb[-1]
    return raw


def pair_rows(t: fit.Table, tr: np.ndarray, n: int, within: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sampled (failed, answered) row pairs among `tr` (seeded), within one unit if `within`."""
    rng = np.random.default_rng(1)
    y = t.labels["weak"][tr]
    if not within:
        bad, good = tr[y == 0], tr[y == 1]
        return rng.choice(bad, n), rng.choice(good, n)
    units = t.unit[tr]
    a, b = [], []
    names = sorted(set(units.tolist()))
    for u in names:
        m = units == u
        bad, good = tr[m & (y == 0)], tr[m & (y == 1)]
        if len(bad) and len(good):
            k = max(1, n * m.sum() // len(tr))
            a.append(rng.choice(bad, k))
            b.append(rng.choice(good, k))
    return np.concatenate(a), np.concatenate(b)


def ranked_logistic(
    x: np.ndarray, y: np.ndarray, diff: np.ndarray, l2: np.ndarray, pair_weight: float
) -> np.ndarray:
    """Pointwise logistic plus `pair_weight` x a pairwise logistic on `diff` rows (answered
    minus failed, no intercept): weights, bias."""
    n, m = len(x), len(diff)

    def loss(wb: np.ndarray) -> tuple[float, np.ndarray]:
        w, bias = wb[:-1], wb[-1]
        z = x @ w + bias
        p = 1.0 / (1.0 + np.exp(-z))
        zd = diff @ w
        pd = 1.0 / (1.0 + np.exp(-zd))
        value = float(
            np.mean(np.logaddexp(0.0, z) - y * z)
            + pair_weight * np.mean(np.logaddexp(0.0, -zd))
            + 0.5 * (l2 * w) @ w
        )
        g = (p - y) / n
        gd = -(1 - pd) * pair_weight / m
        grad = x.T @ g + diff.T @ gd + l2 * w
        return value, np.concatenate([grad, [g.sum()]])

    res = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                   options={"maxiter": 500})  # fmt: skip
    return res.x


def pairwise_out_of_fold(
    t: fit.Table, make: Design, pairs: int, within: bool, pair_weight: float
) -> np.ndarray:
    """Pointwise logistic plus `pair_weight` x a pairwise (ranking) logistic on sampled
    (failed, answered) pairs: the pair rows are differences, with no intercept."""
    y = t.labels["weak"]
    raw = np.zeros(len(y))
    for k in sorted(set(t.fold.tolist())):
        te, tr = np.flatnonzero(t.fold == k), np.flatnonzero(t.fold != k)
        xtr, xte, l2, tr = make(tr, te)
        pos = {r: i for i, r in enumerate(tr.tolist())}
        a, b = pair_rows(t, tr, pairs, within)
        ia = np.array([pos[r] for r in a])
        ib = np.array([pos[r] for r in b])
        diff = xtr[ib] - xtr[ia]  # answered minus failed: should score higher (P ok)
        wb = ranked_logistic(xtr, y[tr], diff, l2, pair_weight)
        raw[te] = xte @ wb[:-1] + wb[-1]
    return raw


def gbm_out_of_fold(t: fit.Table, x: np.ndarray) -> np.ndarray:
    y = t.labels["weak"]
    raw = np.zeros(len(y))
    for k in sorted(set(t.fold.tolist())):
        te, tr = np.flatnonzero(t.fold == k), np.flatnonzero(t.fold != k)
        raw[te] = gbm_logits(x, y, tr, te)
    return raw


def stacked(t: fit.Table, parts: list[np.ndarray]) -> np.ndarray:
    """Blend out-of-fold logits: a logistic on them fitted on the other folds' rows only."""
    y = t.labels["weak"]
    x = np.column_stack(parts)
    out = np.zeros(len(y))
    for k in sorted(set(t.fold.tolist())):
        te, rest = t.fold == k, t.fold != k
        wb = logistic(x[rest], y[rest], np.zeros(x.shape[1]))
        out[te] = x[te] @ wb[:-1] + wb[-1]
    return out


def nested_out_of_fold(t: fit.Table, makes: dict[str, Design]) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold logits where each left-out fold's design is chosen among `makes` by the
    pooled MMLU AUC of an inner leave-one-fold-out run on the other folds only (no choice
    sees the left-out fold)."""
    y = t.labels["weak"]
    raw = np.zeros(len(y))
    picked = []
    folds = sorted(set(t.fold.tolist()))
    for k in folds:
        te, tr = np.flatnonzero(t.fold == k), np.flatnonzero(t.fold != k)
        best, best_auc = "", -1.0
        for name, make in makes.items():
            inner = np.zeros(len(y))
            for j in folds:
                if j == k:
                    continue
                ite, itr = np.flatnonzero(t.fold == j), tr[t.fold[tr] != j]
                xtr, xte, l2, itr = make(itr, ite)
                wb = logistic(xtr, y[itr], l2)
                inner[ite] = xte @ wb[:-1] + wb[-1]
            m = tr[t.source[tr] == "mmlu"]
            score = ev.auc(-inner[m], 1 - y[m]) or 0.0
            if score > best_auc:
                best, best_auc = name, score
        xtr, xte, l2, tr = makes[best](tr, te)
        wb = logistic(xtr, y[tr], l2)
        raw[te] = xte @ wb[:-1] + wb[-1]
        picked.append(f"{k}:{best}")
        print(f"  nested fold {k}: {best} (inner AUC {best_auc:.3f})", flush=True)
    return raw, picked


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def calibrations(t: fit.Table, raw: np.ndarray) -> dict[str, np.ndarray]:
    """P(weak ok) per row under each calibration, each fitted on the other folds only."""
    y = t.labels["weak"]
    out = {k: np.zeros(len(y)) for k in ("platt", "isotonic", "platt_shrunk_0.5")}
    from scipy.optimize import isotonic_regression

    for k in sorted(set(t.fold.tolist())):
        te, rest = t.fold == k, t.fold != k
        cal = fit.platt(raw[rest], y[rest])
        p = sigmoid(cal.a * raw[te] + cal.b)
        out["platt"][te] = p
        base = y[rest].mean()
        out["platt_shrunk_0.5"][te] = 0.5 * p + 0.5 * base
        order = np.argsort(raw[rest])
        iso = isotonic_regression(y[rest][order]).x
        out["isotonic"][te] = np.interp(raw[te], raw[rest][order], iso)
    return out


def ece_floor(t: fit.Table, prob: np.ndarray, draws: int = 200) -> float:
    """Mean over MMLU subjects of the ECE a perfectly calibrated model with these very
    probabilities would show (outcomes drawn from them): the sampling floor per subject."""
    rng = np.random.default_rng(0)
    subjects = sorted(set(t.unit[t.source == "mmlu"].tolist()))
    vals = []
    for s in subjects:
        p = prob[t.unit == s]
        vals.append(np.mean([ev.ece(p, rng.random(len(p)) < p) for _ in range(draws)]))
    return float(np.mean(vals))


def summarize(t: fit.Table, prob: np.ndarray) -> dict:
    rep = ev.report(t.unit, t.source, prob, t.labels["weak"], t.labels["strong"])
    mm, per = rep["mmlu_subject_mean"], rep["per_source"]
    return {
        "mmlu_auc": per["mmlu"]["auc_weak_fails"],
        "mmlu_ece": per["mmlu"]["ece"],
        "mmlu_strong_share": per["mmlu"]["strong_share_for_95"],
        "subject_auc": mm["auc_weak_fails"],
        "subject_ece": mm["ece"],
        "subject_strong_share": mm["strong_share_for_95"],
        "gsm8k_auc": per["gsm8k"]["auc_weak_fails"],
        "gsm8k_ece": per["gsm8k"]["ece"],
        "mt_bench_auc": per["mt_bench"]["auc_weak_fails"],
        "mt_bench_ece": per["mt_bench"]["ece"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    args = ap.parse_args()
    if not outcomes_available(args.data):
        raise SystemExit(f"no RouteLLM outcomes under {args.data}")
    static = fit.static_table(fit.EMBEDDING_LAYER)
    outcomes = load_outcomes(args.data)
    option_static = fit.static_table(fit.OPTION_LAYER)
    t = fit.featurize(outcomes, static, fit.tokenizer_json(), option_static)
    from orchestrator.predict.difficulty import clip_text

    texts = [clip_text(o.text) for o in outcomes]
    names = args.variants.split(",") if args.variants else list(DEFAULT_VARIANTS)
    parts = {p for n in names for p in n.removeprefix("nested:").split("+")} | {"shipped"}
    all_designs = designs(t, texts, static, parts, outcomes)
    special = ("subject_balanced", "gbm", "ensemble", "pairwise", "within_pairs", "nested:", "soft",
               "strong_mix")  # fmt: skip
    chosen = [n for n in names if n in all_designs or n.startswith(special)]
    results = {}
    cache: dict[str, np.ndarray] = {}

    def raw_of(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = out_of_fold(t, all_designs[name])
        return cache[name]

    struct = None
    if any(n.startswith(("gbm", "ensemble")) for n in chosen):
        struct = structure(t, texts, fit.tokenizer_json())
    for name in chosen:
        start = time.monotonic()
        if name == "gbm_struct":
            raw = cache.setdefault(name, gbm_out_of_fold(t, np.hstack([t.lexical, struct])))
        elif name == "gbm_emb_struct":
            centred = t.embedding - t.embedding.mean(0)
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            x = np.hstack([centred @ vt[:32].T, t.lexical, struct])
            raw = cache.setdefault(name, gbm_out_of_fold(t, x))
        elif name == "ensemble_struct":
            if "gbm_struct" not in cache:
                cache["gbm_struct"] = gbm_out_of_fold(t, np.hstack([t.lexical, struct]))
            raw = stacked(t, [raw_of("base"), cache["gbm_struct"]])
        elif name == "ensemble_emb_struct":
            raw = stacked(t, [raw_of("base"), cache["gbm_emb_struct"]])
        elif name.startswith("strong_mix"):  # strong_mix0.3: 0.3 x the strong model's label
            a = float(name.removeprefix("strong_mix"))
            y = (1 - a) * t.labels["weak"] + a * t.labels["strong"]
            raw = out_of_fold(t, all_designs["shipped"], y=y)
        elif name.startswith("soft"):  # soft0.5: labels kept half, half the unit's rate
            raw = out_of_fold(
                t, all_designs["shipped"], y=soft_labels(t, float(name.removeprefix("soft")))
            )
        elif name.startswith("nested:"):
            # nested:a+b+c : the design chosen per left-out fold among a, b, c (inner folds)
            raw, _ = nested_out_of_fold(
                t, {n: all_designs[n] for n in name.removeprefix("nested:").split("+")}
            )
        elif name.startswith(("pairwise", "within_pairs")):
            # pairwise_w1 / within_pairs_w1 : pair weight 1, 40k pairs per fold
            weight = float(name.rsplit("_w", 1)[1])
            raw = pairwise_out_of_fold(
                t, all_designs["base"], 40000, name.startswith("within"), weight
            )
        elif name == "subject_balanced":
            raw = out_of_fold(t, all_designs["base"], subject_weights(t))
        elif name == "sqrt_subject_balanced":
            raw = out_of_fold(t, all_designs["base"], np.sqrt(subject_weights(t)))
        else:
            raw = raw_of(name)
        for cal, prob in calibrations(t, raw).items():
            row = summarize(t, prob)
            if cal == "platt":
                row["subject_ece_floor"] = ece_floor(t, prob)
            results[f"{name}/{cal}"] = row
            print(
                f"{name:18s} {cal:17s} "
                + " ".join(f"{k}={v:.3f}" for k, v in row.items() if v is not None),
                flush=True,
            )
        print(f"  ({time.monotonic() - start:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
