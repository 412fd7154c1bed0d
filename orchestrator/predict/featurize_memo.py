"""A bounded memo of profile-free featurizations, keyed by the request text they read.

    memo = FeaturizeMemo(entries=1024, chars=2_000_000)
    key = memo.key(parsed)                  # None: too long to hold
    done = memo.get(model, key)             # None on a miss
    memo.put(model, key, (features, exact, tier_success))

The same request text recurs: a client retries a refused (429) or timed-out request with the
same body, a chat UI regenerates an answer (the same conversation sent again), evaluation
harnesses and load generators repeat prompts. What `Predictor.featurize` derives from it (token
counts, dense features, phrase cues, the boosters' profile-free quantiles, the difficulty
model's tier success) depends only on the turns, the tools schema, the prompt token ids and the
loaded model, so a hit returns the same values without featurizing again (~0.3 ms on a quiet
2-core EPYC, a fifth of the ingress's event-loop time at load). What a prediction also reads
(`max_tokens`, `n`, reasoning settings, the profile's calibration) is applied per request after
the memo, so predictions stay identical.

Invariants: a value is only returned for the model it was computed with (a reloaded artifact
empties the memo); the keys hold at most `chars` characters in all and one key at most
`chars // 16` (longer texts are not memoized), least recently used first out; thread-safe.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

from orchestrator.predict.request import ParsedRequest

Key = tuple[Any, ...]
_EVERY: weakref.WeakSet[FeaturizeMemo] = weakref.WeakSet()


def clear_memos() -> None:
    """Empty every memo of this process (what `features.clear_token_cache` also does, so a
    benchmark of cold featurizing is not answered from a memo)."""
    for memo in list(_EVERY):
        memo.clear()


class FeaturizeMemo:
    """LRU of featurizations, bounded by entries and by the characters its keys hold."""

    def __init__(self, entries: int = 1024, chars: int = 2_000_000) -> None:
        """`entries` 0 disables the memo."""
        self.entries, self.max_chars = entries, chars
        self._items: OrderedDict[Key, tuple[int, Any]] = OrderedDict()
        self._model: object | None = None
        self._chars = 0
        self._lock = threading.Lock()
        _EVERY.add(self)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def chars(self) -> int:
        """Characters held by the keys."""
        return self._chars

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._chars = 0

    def key(self, parsed: ParsedRequest) -> Key | None:
        """What featurization reads of `parsed`; None when the memo is off or the text is
        longer than one key may hold."""
        if self.entries <= 0:
            return None
        size = len(parsed.tools_text) + sum(len(t.text) for t in parsed.turns)
        if parsed.prompt_token_ids is not None:
            size += len(parsed.prompt_token_ids)
        if size > self.max_chars // 16:
            return None
        return (
            size,
            tuple((t.role, t.text) for t in parsed.turns),
            parsed.tools_text,
            parsed.prompt_token_ids,
            parsed.is_completion,
        )

    def get(self, model: object, key: Key | None) -> Any | None:
        """The value `put` for `key` under `model`, or None."""
        if key is None:
            return None
        with self._lock:
            if model is not self._model:
                return None
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, model: object, key: Key | None, value: Any) -> None:
        """Hold `value` for `key` under `model` (another model than before empties the memo
        first), then drop the least recently used entries over the bounds."""
        if key is None:
            return
        with self._lock:
            if model is not self._model:
                self._items.clear()
                self._chars, self._model = 0, model
            if key in self._items:
                return
            self._items[key] = (key[0], value)
            self._chars += key[0]
            while len(self._items) > self.entries or self._chars > self.max_chars:
                _, (size, _) = self._items.popitem(last=False)
                self._chars -= size
