"""Replica choice inside one profile: prefix-cache affinity, bounded by load (pure, no Ray).

A request's prefix key picks a "home" replica by rendezvous (highest-random-weight) hashing,
so requests sharing the key land where their prefix is likely cached in the KV cache, and
adding or removing a replica moves only the keys it gains or loses. The home replica is
skipped when it is much busier than the least-loaded replica (`imbalance_threshold`
requests more), at its concurrency limit, or its KV cache is nearly full (`kv_cache_high`)
while another replica has room; then the order is least-loaded first.

Load of a replica = max(requests this router has in flight there, running + waiting from the
replica's last `record_routing_stats`): the local count is fresh but sees only this router's
traffic; the reported one sees everyone's but is up to a stats period old.

Prefix key: for chat requests, the system message(s) and the first user message; for text
prompts, the prompt itself; both cut to `prefix_chars` characters. Every later turn of a
conversation therefore keeps the key of its first turn and finds its earlier turns cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# keys a replica's `record_routing_stats` returns (all optional)
STATS_KEYS = (
    "running", "waiting", "kv_cache_usage", "ttft_ms", "tpot_ms", "outstanding_tokens",
    "prefill_tokens",
)  # fmt: skip
# request fields that may carry an explicit affinity key set by the ingress
EXPLICIT_KEY_FIELDS = ("prefix_key", "routing_key")


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    """What a profile replica reports through `record_routing_stats` (see `to_dict`)."""

    running: int = 0  # requests the engine is decoding
    waiting: int = 0  # requests queued inside the engine
    kv_cache_usage: float | None = None  # fraction of KV-cache blocks in use, 0..1
    ttft_ms: float | None = None  # recent TTFT (e.g. median of the last minute)
    tpot_ms: float | None = None  # recent time per output token
    outstanding_tokens: float | None = None  # predicted prefill + remaining decode it holds
    prefill_tokens: float | None = None  # prompt tokens of its streams before their first token

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ReplicaStats:
        """Tolerant: unknown keys are ignored, missing or malformed ones take the default."""
        if not data:
            return cls()
        return cls(
            running=_int(data.get("running")),
            waiting=_int(data.get("waiting")),
            kv_cache_usage=_float(data.get("kv_cache_usage")),
            ttft_ms=_float(data.get("ttft_ms")),
            tpot_ms=_float(data.get("tpot_ms")),
            outstanding_tokens=_float(data.get("outstanding_tokens")),
            prefill_tokens=_float(data.get("prefill_tokens")),
        )


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    replica_id: str
    in_flight: int = 0  # this router's requests on the replica right now
    stats: ReplicaStats = ReplicaStats()
    max_ongoing: int | None = None

    @property
    def load(self) -> int:
        return max(self.in_flight, self.stats.running + self.stats.waiting)

    @property
    def full(self) -> bool:
        return self.max_ongoing is not None and self.in_flight >= self.max_ongoing


@dataclass(frozen=True, slots=True)
class AffinityConfig:
    prefix_chars: int = 1024
    imbalance_threshold: float = 4.0  # requests
    kv_cache_high: float = 0.95


def prefix_key(text: str | None, prefix_chars: int) -> str | None:
    """A short stable digest of the first `prefix_chars` characters (None for no text)."""
    if not text:
        return None
    return hashlib.blake2b(text[:prefix_chars].encode(), digest_size=16).hexdigest()


def rendezvous_order(key: str, replica_ids: Sequence[str]) -> list[str]:
    """Replica ids by descending hash weight for `key` (stable across processes)."""

    def weight(rid: str) -> bytes:
        return hashlib.blake2b(f"{key}|{rid}".encode(), digest_size=8).digest()

    return sorted(replica_ids, key=weight, reverse=True)


def rank_replicas(
    key: str | None,
    replicas: Sequence[ReplicaLoad],
    config: AffinityConfig = AffinityConfig(),
    *,
    tiebreak: str = "",
) -> tuple[list[str], str]:
    """All replica ids, most preferred first, and why ("affinity", "imbalanced", "kv_full",
    "replica_full", "no_key"). Equal loads are ordered by rendezvous on `tiebreak`."""
    if not replicas:
        return [], "no_replicas"
    by_id = {r.replica_id: r for r in replicas}
    ids = list(by_id)
    hash_rank = {rid: i for i, rid in enumerate(rendezvous_order(key or tiebreak, ids))}

    def kv_high(rid: str) -> bool:
        usage = by_id[rid].stats.kv_cache_usage
        return usage is not None and usage >= config.kv_cache_high

    def least_loaded() -> list[str]:
        """Free slots first, then KV-cache room, then load, then hash order."""
        return sorted(
            ids, key=lambda rid: (by_id[rid].full, kv_high(rid), by_id[rid].load, hash_rank[rid])
        )

    if key is None:
        return least_loaded(), "no_key"
    home = min(ids, key=hash_rank.__getitem__)
    h = by_id[home]
    lightest = min(r.load for r in replicas)
    if h.full and any(not r.full for r in replicas):
        return least_loaded(), "replica_full"
    if h.load - lightest > config.imbalance_threshold:
        return least_loaded(), "imbalanced"
    if kv_high(home) and not all(kv_high(rid) for rid in ids):
        return least_loaded(), "kv_full"
    rest = [rid for rid in least_loaded() if rid != home]
    return [home, *rest], "affinity"


def extract_prompt_text(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """The affinity text of a Serve call's arguments, or None.

    Looks, in order, at keyword arguments then positional ones, for: an explicit
    `prefix_key`/`routing_key` (used as is), `messages` (chat: system + first user message),
    `prompt` (text or list of texts/token ids); on objects (attributes) and mappings (keys).
    """
    for name in EXPLICIT_KEY_FIELDS:
        explicit = kwargs.get(name)
        if isinstance(explicit, str) and explicit:
            return explicit
    for value in (*kwargs.values(), *args):
        text = _text_of(value)
        if text is not None:
            return text
    return None


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _text_of(value: Any) -> str | None:
    if value is None or isinstance(value, (str, bytes, int, float, bool)):
        return None
    for name in EXPLICIT_KEY_FIELDS:
        explicit = _field(value, name)
        if isinstance(explicit, str) and explicit:
            return explicit
    messages = _field(value, "messages")
    if isinstance(messages, Sequence) and not isinstance(messages, str) and messages:
        return _chat_text(messages)
    prompt = _field(value, "prompt")
    if prompt is not None:
        return _coerce(prompt) or None
    return None


def _chat_text(messages: Sequence[Any]) -> str:
    parts = []
    for m in messages:
        role = str(_field(m, "role") or "")
        parts.append(f"{role}\n{_coerce(_field(m, 'content'))}\n")
        if role == "user":
            break
    return "".join(parts)


def _coerce(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(_coerce(c) for c in content)
    if isinstance(content, (int, float)):
        return f"{content},"
    text = _field(content, "text")
    return text if isinstance(text, str) else ""
