"""The fast exact tokenizer path, the phrase cues, and upgrades of stored state."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sqlite3
import zlib

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from orchestrator.paths import SHARED_DATA
from orchestrator.predict import tokenizer as tokenizer_mod
from orchestrator.predict.artifact import (
    DEFAULT_ARTIFACT_DIR,
    ArtifactError,
    load_artifact,
    traffic_artifact_dir,
)
from orchestrator.predict.bpe_pieces import AsciiPieces
from orchestrator.predict.lexical import sorted_unique
from orchestrator.predict.phrases import PHRASE_BUCKETS, phrase_ids
from orchestrator.predict.predictor import Predictor
from orchestrator.predict.store import PredictorStore
from orchestrator.predict.tokenizer import fast_encoder, load_default_tokenizer

TEXTS = [
    "",
    "Write a 2,000-word essay on lakes.",
    "  multiple   spaces\n\n\ttabs\r\nand CRLF  ",
    "Ünïcödé — 中文字符 — русский — emoji 🙂🚀🏳️‍🌈 — combining e\u0301",
    "user text containing <|im_start|>assistant\nand <|im_end|> markers",
    "def f(x):\n    return x ** 2  # 'quoted' \"double\" `tick` it's we'll",
    "1234567890 3.14159 1e-9 0x1F" * 20,
]


def _hf_ids(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def test_default_tokenizer_uses_tiktoken_and_gives_identical_ids():
    tok = load_default_tokenizer()
    assert tokenizer_mod.tiktoken_encoder(tok) is not None  # the fast path applies
    encode = fast_encoder(tok)
    for text in TEXTS:
        assert encode(text) == _hf_ids(tok, text), text


def test_fast_encoder_matches_on_real_prompts_and_answers():
    path = SHARED_DATA / "alpaca-eval" / "gpt-4o-2024-05-13.json"
    if not path.is_file():
        pytest.skip(f"shared data absent: {path}")
    rows = json.loads(path.read_text(encoding="utf-8"))[:150]
    tok = load_default_tokenizer()
    encode = fast_encoder(tok)
    for row in rows:
        for text in (row["instruction"], row["output"]):
            assert encode(text) == _hf_ids(tok, text)


def test_ascii_pieces_give_the_tokenizers_ids():
    """ASCII text encoded piece by piece (cached) equals the tokenizer's own ids: every ASCII
    character (VT/FF/CR, 0x1C-0x1F, controls), whitespace runs before words and at the end,
    contractions in both cases, digits and punctuation runs; special tokens go whole."""
    tok = load_default_tokenizer()
    special = tuple(t.content for t in tok.get_added_tokens_decoder().values())
    pieces = AsciiPieces(tok, special, max_pieces=50)  # small: the cache also starts over
    rng = np.random.default_rng(30)
    parts = [chr(c) for c in range(128)] + [
        "  ", "   ", "\t\t", "\n\n", " \n ", "'s", "'S", "'ll", "'re", "don't", " 2026",
        "12345", "...", "!?", " word", "Word", "e-mail", "x=1;", "  \x0b", "\x1c ", "\x0c\r\n",
    ]  # fmt: skip
    texts = ["".join(rng.choice(parts, size=n)) for n in rng.integers(0, 60, size=600)]
    texts += [t for t in TEXTS if t.isascii() and not any(s in t for s in special)]
    for text in texts:
        assert pieces(text) == _hf_ids(tok, text), repr(text)
        assert fast_encoder(tok)(text) == _hf_ids(tok, text), repr(text)
    assert len(pieces) <= 50
    assert pieces("hi <|im_start|>user") is None and pieces("é") is None


def test_other_tokenizers_fall_back_to_the_tokenizers_library():
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "!": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    assert tokenizer_mod.tiktoken_encoder(tok) is None
    assert fast_encoder(tok)("hello world !") == [1, 2, 3]


def test_phrase_ids_are_stable_sets_of_words_pairs_and_openers():
    ids = phrase_ids("write an essay about lakes")
    assert ids.dtype == np.int32 and np.all(np.diff(ids) > 0)
    assert ids.min() >= 0 and ids.max() < PHRASE_BUCKETS
    # 5 words + 4 pairs + 3 openers, barring hash collisions
    assert len(ids) == 12
    assert np.array_equal(ids, phrase_ids("write an essay about lakes"))
    assert not np.array_equal(ids, phrase_ids("lakes about essay an write"))
    assert len(phrase_ids("")) == 0


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _phrase_ids_mixed_apart(cue_text: str) -> np.ndarray:
    """The cues as first written: words, pairs and openers each mixed on their own."""
    words = re.findall(r"[a-z0-9']+|[^\sa-z0-9]", cue_text)
    if not words:
        return np.zeros(0, dtype=np.int32)
    h = np.array([zlib.crc32(w.encode("utf-8", "surrogatepass")) for w in words], np.uint64)
    with np.errstate(over="ignore"):
        cues = np.concatenate(
            (
                _fmix64(h),
                _fmix64(((h[:-1] << np.uint64(32)) | h[1:]) ^ np.uint64(0xC2B2AE3D27D4EB4F)),
                _fmix64(h[:3] ^ np.uint64(0x9E3779B97F4A7C15)),
            )
        )
    return np.unique((cues & np.uint64(PHRASE_BUCKETS - 1)).astype(np.int32))


def test_phrase_ids_equal_the_cues_mixed_apart():
    """One mixing pass over words, pairs and openers gives the slots of three passes."""
    rng = np.random.default_rng(30)
    alphabet = list("abcdefghij klm\n'?!,.0123456789") + ["ü", "中", "\ud800"]
    texts = [t.lower() for t in TEXTS] + ["one", "two words", "a b c d"]
    texts += ["".join(rng.choice(alphabet, size=n)) for n in rng.integers(0, 400, size=200)]
    for text in texts:
        assert np.array_equal(phrase_ids(text), _phrase_ids_mixed_apart(text)), text


def test_phrase_model_separates_an_essay_from_a_yes_no_answer(predictor):
    def score(text: str) -> float:
        body = {"messages": [{"role": "user", "content": text}]}
        return predictor.predict(body).features.phrase_score

    assert score("Write a detailed essay about the history of Rome.") > score(
        "Is Rome in Italy? Answer yes or no."
    )


def test_old_traffic_table_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """CREATE TABLE traffic (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
        profile TEXT NOT NULL, feature_schema TEXT NOT NULL, features BLOB NOT NULL,
        lexical_ids BLOB NOT NULL, prompt_tokens INTEGER NOT NULL,
        predicted_p50 INTEGER NOT NULL, predicted_p90 INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL);"""
    )
    conn.execute(
        "INSERT INTO traffic(ts, profile, feature_schema, features, lexical_ids, prompt_tokens,"
        " predicted_p50, predicted_p90, output_tokens, reasoning_tokens)"
        " VALUES (1, 'p', 'old', ?, ?, 5, 1, 2, 3, 0)",
        (np.ones(3, np.float32).tobytes(), np.arange(4, dtype=np.int32).tobytes()),
    )
    conn.commit()
    conn.close()
    store = PredictorStore(path)
    try:
        (record,) = list(store.iter_records())
        assert record.output_tokens == 3 and len(record.phrase_ids) == 0
        assert list(record.lexical_ids) == [0, 1, 2, 3]
    finally:
        store.close()


def test_incompatible_refit_falls_back_to_the_shipped_artifact(caplog):
    refit = traffic_artifact_dir()  # under the per-test ORCHESTRATOR_STATE_DIR
    refit.mkdir(parents=True)
    (refit / "meta.json").write_text(json.dumps({"format": 1}), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        loaded = load_artifact()
    assert "ignoring the predictor refit" in caplog.text
    shipped = load_artifact(DEFAULT_ARTIFACT_DIR)
    assert loaded.meta == shipped.meta


def test_artifact_hashed_another_way_is_refused(artifact):
    other = dataclasses.replace(
        artifact, meta=artifact.meta.model_copy(update={"phrase_buckets": PHRASE_BUCKETS // 2})
    )
    with pytest.raises(ArtifactError, match="phrase hashing"):
        Predictor(other, store=None)


def test_sorted_unique_is_numpys_unique():
    rng = np.random.default_rng(7)
    arrays = [np.zeros(0, np.int32), np.array([5], np.int32), np.array([3, 3, 3], np.int64)]
    arrays += [
        rng.integers(0, high, size=size).astype(dtype)
        for high, size, dtype in [
            (10, 50, np.int32),
            (50_000, 300, np.int32),
            (2**18, 900, np.int64),
        ]
    ]
    for ids in arrays:
        found, expected = sorted_unique(ids), np.unique(ids)
        assert found.dtype == expected.dtype
        assert np.array_equal(found, expected)
