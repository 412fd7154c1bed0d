"""Word and word-pair cues of the ask, hashed: the input of the phrase ridge model.

The token-id ridge (`lexical`) sees sub-word pieces; this one sees lower-cased words, adjacent
word pairs ("write an", "an essay", "yes or") and the first three words marked as openers
("^write", "^what"). Each word is hashed once with CRC-32 (stable across processes and
platforms); pairs and openers combine those hashes with a 64-bit mixer, vectorised, and every
cue lands in one of `PHRASE_BUCKETS` slots. A request is the sorted set of its slots, so no
text is kept.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from orchestrator.predict.lexical import sorted_unique

PHRASE_BUCKETS = 1 << 18
_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9]")
_OPENERS = 3
_OPENER_SALT = np.uint64(0x9E3779B97F4A7C15)
_PAIR_SALT = np.uint64(0xC2B2AE3D27D4EB4F)


def _mix(x: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (MurmurHash3's fmix64): every input bit moves every output bit."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def phrase_ids(cue_text: str) -> np.ndarray:
    """Sorted unique int32 slots of the words, word pairs and openers of a lower-cased text."""
    words = _WORD.findall(cue_text)
    if not words:
        return np.zeros(0, dtype=np.int32)
    h = np.fromiter(
        (zlib.crc32(w.encode("utf-8", "surrogatepass")) for w in words),
        dtype=np.uint64,
        count=len(words),
    )
    with np.errstate(over="ignore"):  # the mixer is elementwise: one pass over all cues
        cues = _mix(
            np.concatenate(
                (h, ((h[:-1] << np.uint64(32)) | h[1:]) ^ _PAIR_SALT, h[:_OPENERS] ^ _OPENER_SALT)
            )
        )
    return sorted_unique((cues & np.uint64(PHRASE_BUCKETS - 1)).astype(np.int32))
