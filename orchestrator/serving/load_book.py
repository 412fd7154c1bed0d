"""The ingress's book of requests in flight, by request id (llm-d's active-request plugin:
+1 when a request starts, -1 when it completes).

    book.begin(request_id, tenant, profile, reserved_usd)   # routed: counted on its profile
    book.move(request_id, other_profile)                     # a stream continues elsewhere
    book.end(request_id)                                     # settled (or refused late)
    with book.waiting(model): ...                            # not yet counted on a profile

Invariants: a request id is counted at most once (a second `begin` replaces the first); every
count `begin` added, `end` removes, on the profile the request was last moved to; what the
plan reads (`in_flight`, `tenant_in_flight`, `waiting_for`, `reserved_usd`) is always the sum
over the requests begun and not ended.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    tenant: str
    profile: str
    reserved_usd: float


class LoadBook:
    """In flight per profile and per tenant, waiting per model, held USD per tenant."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._profiles: dict[str, int] = defaultdict(int)
        self._tenants: dict[str, int] = defaultdict(int)
        self._reserved: dict[str, float] = defaultdict(float)
        self._waiting: dict[str | None, int] = defaultdict(int)

    def begin(self, request_id: str, tenant: str, profile: str, reserved_usd: float) -> None:
        """Count a routed request on `profile` and its hold against `tenant`."""
        self.end(request_id)
        self._entries[request_id] = _Entry(tenant, profile, reserved_usd)
        self._profiles[profile] += 1
        self._tenants[tenant] += 1
        self._reserved[tenant] += reserved_usd

    def move(self, request_id: str, profile: str) -> None:
        """The request's engine is now `profile` (a stream migrated)."""
        entry = self._entries.get(request_id)
        if entry is not None and entry.profile != profile:
            self._profiles[entry.profile] -= 1
            self._profiles[profile] += 1
            entry.profile = profile

    def end(self, request_id: str) -> None:
        """The request no longer runs (no-op when it was not begun)."""
        entry = self._entries.pop(request_id, None)
        if entry is None:
            return
        self._profiles[entry.profile] -= 1
        self._tenants[entry.tenant] -= 1
        self._reserved[entry.tenant] -= entry.reserved_usd

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
