"""Which prompt prefix blocks each profile's replicas were recently sent (pure; no clock).

vLLM's prefix caching keeps a prompt's KV blocks (a hash chain over fixed-size token blocks)
and skips their prefill when a later prompt starts with them. The router prices a prompt and
estimates its TTFT per profile, so it needs the share of this prompt's leading blocks that
profile likely holds: the blocks routed there recently, kept in an LRU as large as the
profile's KV cache (`capacity_blocks`, all its replicas). A leading run counts, stopping at
the first block not held, as the engine's cache does. An estimate: eviction inside the
engine and the replica choice within the profile are not seen.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence


class PrefixIndex:
    """Per profile, an LRU of the prompt blocks recently routed to it."""

    def __init__(self) -> None:
        self._held: dict[str, OrderedDict[Hashable, None]] = {}

    def cached_share(self, profile: str, blocks: Sequence[Hashable]) -> float:
        """The share of `blocks` (a prompt's, in order) whose leading run `profile` holds."""
        held = self._held.get(profile)
        if not held or not blocks:
            return 0.0
        n = 0
        for b in blocks:
            if b not in held:
                break
            n += 1
        return n / len(blocks)

    def hold(self, profile: str, blocks: Sequence[Hashable], capacity_blocks: int) -> None:
        """`blocks` were routed to `profile`, whose caches hold `capacity_blocks` in all."""
        held = self._held.setdefault(profile, OrderedDict())
        for b in blocks:
            held[b] = None
            held.move_to_end(b)
        while len(held) > max(0, capacity_blocks):
            held.popitem(last=False)
