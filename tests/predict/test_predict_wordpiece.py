"""The difficulty model's word-by-word WordPiece ids: the tokenizer's own ids, the same scores."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from orchestrator.paths import SHARED_DATA
from orchestrator.predict.difficulty import DEFAULT_DIFFICULTY_DIR, DifficultyModel
from orchestrator.predict.tokenizer import load_default_tokenizer
from orchestrator.predict.wordpiece import WordPieceIds

ASCII_TEXTS = [
    "",
    "   ",
    "What is the capital of France?",
    "Write a 2,000-word essay on lakes.",
    "  multiple   spaces\n\n\ttabs\r\nand CRLF  ",
    "def f(x):\n    return x ** 2  # 'quoted' \"double\" `tick` it's we'll {a|b} ~/p@q",
    "1234567890 3.14159 1e-9 0x1F $5 50% #hash" * 20,
    "Supercalifragilisticexpialidocious " + "x" * 150 + " antidisestablishmentarianism",
    "Request 17: Summarise in one sentence why rivers in Europe flow the way they do.",
]
OTHER_TEXTS = [
    "Ünïcödé — 中文字符 — русский — emoji 🙂",  # not ASCII
    "bell\x07 and form feed\x0c and DEL\x7f",  # control characters the normalizer removes
    "fill the [MASK] and the [cls] token",  # added tokens, matched before normalizing
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    raw = gzip.decompress((DEFAULT_DIFFICULTY_DIR / "tokenizer.json.gz").read_bytes()).decode()
    tok = Tokenizer.from_str(raw)
    tok.no_padding()
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def fast(tokenizer: Tokenizer) -> WordPieceIds:
    found = WordPieceIds.of(tokenizer)
    assert found is not None  # the difficulty model's tokenizer is BERT-shaped
    return found


def _ids(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def test_ascii_text_gets_the_tokenizers_ids(fast, tokenizer):
    for text in ASCII_TEXTS:
        assert fast(text) == _ids(tokenizer, text), text
        assert fast(text) == _ids(tokenizer, text), text  # from the cache: the same


def test_other_text_is_left_to_the_tokenizer(fast):
    for text in OTHER_TEXTS:
        assert fast(text) is None, text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=300))
def test_any_ascii_text_gets_the_tokenizers_ids_or_none(fast, tokenizer, text):
    ids = fast(text)
    assert ids is None or ids == _ids(tokenizer, text)
    printable = all(" " <= c <= "~" or c in "\t\n\r" for c in text)
    if printable and "[" not in text:  # every added token has a "["
        assert ids is not None


def test_real_prompts_get_the_tokenizers_ids(fast, tokenizer):
    path = SHARED_DATA / "alpaca-eval" / "gpt-4o-2024-05-13.json"
    if not path.is_file():
        pytest.skip(f"shared data absent: {path}")
    rows = json.loads(path.read_text(encoding="utf-8"))[:300]
    covered = 0
    for row in rows:
        for text in (row["instruction"], row["output"]):
            ids = fast(text)
            if ids is not None:
                covered += 1
                assert ids == _ids(tokenizer, text)
    assert covered > 300  # most real texts are plain ASCII


def test_the_cache_stays_within_its_bound(tokenizer):
    fast = WordPieceIds.of(tokenizer)
    assert fast is not None
    fast.max_words = 50
    text = " ".join(f"word{i}" for i in range(400))
    assert fast(text) == _ids(tokenizer, text)
    assert 0 < len(fast) <= 50


def test_a_tokenizer_of_another_kind_has_no_fast_path():
    assert WordPieceIds.of(load_default_tokenizer()) is None  # SmolLM2's byte-level BPE


def test_scores_are_those_of_the_tokenizer_path():
    """Identical tier successes and logits with and without the word-by-word ids."""
    texts = (
        ASCII_TEXTS
        + OTHER_TEXTS
        + [
            "What is 7 * 8?\nA. 54\nB. 56\nC. 58\nD. 64\nAnswer:",  # multiple choice: offsets
            "Explain quantum entanglement to a child. " * 80,  # clipped to head and tail
        ]
    )
    path = SHARED_DATA / "alpaca-eval" / "gpt-4o-2024-05-13.json"
    if path.is_file():
        texts += [r["instruction"] for r in json.loads(path.read_text(encoding="utf-8"))[:200]]
    fast, slow = DifficultyModel(), DifficultyModel(word_ids=False)
    for text in texts:
        assert fast.raw_logits(text, 2) == slow.raw_logits(text, 2), text
        assert fast.tier_success(text) == slow.tier_success(text), text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[a-zA-Z0-9_]{1,120}", fullmatch=True), min_size=1, max_size=30))
def test_new_words_get_the_tokenizers_ids(fast, tokenizer, words):
    """Random words (nearly all new to the cache), longer than WordPiece's limit too."""
    text = " ".join(words)
    assert fast(text) == _ids(tokenizer, text)
