"""A BERT WordPiece tokenizer's ids of plain ASCII text, word by word from a cache.

    ids = WordPieceIds.of(tokenizer)       # None unless the tokenizer is BERT-shaped
    ids(text)                              # == tokenizer.encode(text, add_special_tokens=False).ids
                                           # or None: not plain ASCII, use the tokenizer

A BERT tokenizer (`BertNormalizer`, `BertPreTokenizer`, a `WordPiece` model) splits a text into
words and punctuation marks and encodes each word on its own, so a text's ids are its words'
ids in order. For ASCII text without control characters the normalizer is only `lower()`
(clean text, accents and CJK spacing change nothing there) and the pre-tokenizer is one
regular expression: runs of non-space, non-punctuation characters, and each ASCII punctuation
mark alone. Each word's ids come from the tokenizer itself the first time (so they are its
ids by construction) and from a bounded cache after; words recur, texts do not. ~10 us for a
230-character message instead of ~50 us for `Tokenizer.encode`, and no hand-off of the GIL.

Any other text (non-ASCII, control characters, an added token such as "[MASK]" in it) gets
None: the caller encodes it with the tokenizer. Thread-safe (dict reads and writes).
"""

from __future__ import annotations

import json
import re

from tokenizers import Tokenizer

_PUNCT = r"!-/:-@\[-`{-~"  # the ASCII punctuation marks: BERT isolates each one
_WORD = re.compile(rf"[^ \t\n\r{_PUNCT}]+|[{_PUNCT}]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # removed by the normalizer
MAX_WORDS = 65_536  # cached words (each at most MAX_WORD_CHARS): a few MB at most
MAX_WORD_CHARS = 100  # WordPiece's own limit: a longer word is one [UNK]
_PROBES = (
    "Hello, world! It's 2026; we'll see... 12345 + 678 = 13023?",
    "def f(x):\n    return {'a': [1, 2.5e-3]}  # comment\n\n\n\tTabs\t\tand   spaces   ",
    "UPPER lower MiXeD snake_case kebab-case CamelCase e.g. i.e. U.S.A. $5.00 50% #1 @me ~/x",
    "Supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis " + "a" * 120,
)


class WordPieceIds:
    """Exact ids of plain ASCII text for one BERT tokenizer (see the module docstring)."""

    def __init__(self, tokenizer: Tokenizer, added: tuple[str, ...], max_words: int = MAX_WORDS):
        self._tokenizer = tokenizer
        # added tokens ("[MASK]") are matched before the normalizer: not mirrored (compared
        # lower-cased, so one matched after it is caught too)
        self._added = tuple(token.lower() for token in added)
        self._words: dict[str, list[int]] = {}
        self.max_words = max_words

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> WordPieceIds | None:
        """The fast path for `tokenizer`, or None when it is not a lower-casing BERT WordPiece
        tokenizer or differs from it on a probe text."""
        spec = json.loads(tokenizer.to_str())
        norm, pre = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
        if (
            norm.get("type") != "BertNormalizer"
            or not norm.get("lowercase")
            or pre.get("type") != "BertPreTokenizer"
            or (spec.get("model") or {}).get("type") != "WordPiece"
        ):
            return None
        added = tuple(t["content"] for t in spec.get("added_tokens", []) if t.get("content"))
        fast = cls(tokenizer, added)
        for probe in _PROBES:
            if fast(probe) != tokenizer.encode(probe, add_special_tokens=False).ids:
                return None
        return fast

    def __len__(self) -> int:
        """Words cached now."""
        return len(self._words)

    def __call__(self, text: str) -> list[int] | None:
        """`tokenizer.encode(text, add_special_tokens=False).ids`, or None for text this
        path does not cover (the caller encodes it)."""
        if not text.isascii() or _CONTROL.search(text) is not None:
            return None
        lowered = text.lower()
        for token in self._added:
            if token in lowered:
                return None
        ids: list[int] = []
        words = self._words
        for word in _WORD.findall(lowered):
            found = words.get(word)
            if found is None:
                found = self._tokenizer.encode(word, add_special_tokens=False).ids
                if len(word) <= MAX_WORD_CHARS:
                    if len(words) >= self.max_words:
                        words.clear()  # a new vocabulary: start over (rare)
                    words[word] = found
            ids.extend(found)
        return ids
