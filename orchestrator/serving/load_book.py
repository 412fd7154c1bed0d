"""The ingress's book of requests in flight, by request id (llm-d's active-request plugin:
+1 when a request starts, -1 when it completes).

    book.begin(request_id, tenant, profile, reserved_usd)   # routed: counted on its profile
    book.begin(..., background=True)                         # a batch line (not interactive)
    book.move(request_id, other_profile)                     # a stream continues elsewhere
    book.end(request_id)                                     # settled (or refused late)
    with book.waiting(model): ...                            # not yet counted on a profile

Invariants: a request id is counted at most once (a second `begin` replaces the first); every
count `begin` added, `end` removes, on the profile the request was last moved to; what the
plan reads (`in_flight`, `tenant_in_flight`, `waiting_for`, `reserved_usd`) is always the sum
over the requests begun and not ended; `interactive_idle_s(profile)` is 0 while an interactive
(not background) request is counted on the profile, else the time since the last one left it.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    tenant: str
    profile: str
    reserved_usd: float
    background: bool


class LoadBook:
    """In flight per profile and per tenant, waiting per model, held USD per tenant, and when
    each profile last had an interactive request."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._profiles: dict[str, int] = defaultdict(int)
        self._interactive: dict[str, int] = defaultdict(int)
        self._interactive_left: dict[str, float] = {}  # profile -> when the last one left
        self._tenants: dict[str, int] = defaultdict(int)
        self._reserved: dict[str, float] = defaultdict(float)
        self._waiting: dict[str | None, int] = defaultdict(int)

    def begin(
        self,
        request_id: str,
        tenant: str,
        profile: str,
        reserved_usd: float,
        *,
        background: bool = False,
    ) -> None:
        """Count a routed request on `profile` and its hold against `tenant` (`background`:
        a batch line, not counted as interactive)."""
        self.end(request_id)
        self._entries[request_id] = _Entry(tenant, profile, reserved_usd, background)
        self._profiles[profile] += 1
        if not background:
            self._interactive[profile] += 1
        self._tenants[tenant] += 1
        self._reserved[tenant] += reserved_usd

    def move(self, request_id: str, profile: str) -> None:
        """The request's engine is now `profile` (a stream migrated)."""
        entry = self._entries.get(request_id)
        if entry is not None and entry.profile != profile:
            self._profiles[entry.profile] -= 1
            self._profiles[profile] += 1
            if not entry.background:
                self._left_interactive(entry.profile)
                self._interactive[profile] += 1
            entry.profile = profile

    def end(self, request_id: str) -> None:
        """The request no longer runs (no-op when it was not begun)."""
        entry = self._entries.pop(request_id, None)
        if entry is None:
            return
        self._profiles[entry.profile] -= 1
        self._tenants[entry.tenant] -= 1
        self._reserved[entry.tenant] -= entry.reserved_usd
        if not entry.background:
            self._left_interactive(entry.profile)

    def _left_interactive(self, profile: str) -> None:
        self._interactive[profile] -= 1
        self._interactive_left[profile] = self._clock()

    @contextmanager
    def waiting(self, model: str | None) -> Iterator[None]:
        """A request for `model` at this ingress that no profile counts yet (waiting for its
        prediction, or for its decision to be written): admission counts it as queued."""
        self._waiting[model] += 1
        try:
            yield
        finally:
            self._waiting[model] -= 1

    def in_flight(self, profile: str) -> int:
        return self._profiles.get(profile, 0)

    def interactive_idle_s(self, profile: str) -> float:
        """0 while an interactive request is counted on `profile`, else seconds since the last
        one left it (infinite: none ever ran there)."""
        if self._interactive.get(profile, 0) > 0:
            return 0.0
        left = self._interactive_left.get(profile)
        return math.inf if left is None else max(0.0, self._clock() - left)

    def tenant_in_flight(self, tenant: str) -> int:
        return self._tenants.get(tenant, 0)

    def waiting_for(self, model: str | None) -> int:
        return self._waiting.get(model, 0)

    def reserved_usd(self, tenant: str) -> float:
        """What this replica holds for the tenant's requests in flight."""
        return self._reserved.get(tenant, 0.0)

    def running(self) -> list[str]:
        """Request ids in flight (their budget holds are renewed)."""
        return list(self._entries)

    def profile_of(self, request_id: str) -> str | None:
        entry = self._entries.get(request_id)
        return entry.profile if entry is not None else None

    def by_profile(self) -> Mapping[str, int]:
        """In flight per profile (a copy)."""
        return {k: v for k, v in self._profiles.items() if v}

    def idle(self) -> bool:
        """Nothing in flight, waiting or held."""
        return not self._entries and not any(self._waiting.values())
