"""Demand a closed profile would get: requests that lost to an open one only on the price of
opening it (pure; time is passed in).

`decide` marks such a candidate `opening_price` (routing/outcome.py); the caller records it
here and reads the rate back to amortise the profile's opening price over it
(`pricing.opening_cost_usd` via `request.live.live_state`): a trickle keeps the
price at about a replica's hold per request, demand that would fill a replica lowers it
until the profile opens. Invariant: samples older than the window are dropped on every read
and write.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from orchestrator.routing.outcome import OPENING_PRICE
from orchestrator.routing.types import Decision


def declined_opening(decision: Decision) -> str | None:
    """The closed profile this decision did not open for its price (None: none)."""
    for c in decision.candidates:
        if c.lost_because[:1] == (OPENING_PRICE,):
            return c.profile
    return None


@dataclass
class OpeningDemand:
    """Per profile, requests declined for its opening price in the last `window_s` seconds."""

    window_s: float = 300.0
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def record(self, decision: Decision, now: float) -> None:
        name = declined_opening(decision)
        if name is not None:
            q = self._seen.setdefault(name, deque())
            q.append(now)
            self._drop(q, now)

    def rps(self, profile: str, now: float) -> float:
        q = self._seen.get(profile)
        if not q:
            return 0.0
        self._drop(q, now)
        return len(q) / self.window_s

    def _drop(self, q: deque[float], now: float) -> None:
        while q and q[0] < now - self.window_s:
            q.popleft()
