"""SLO attainment per tenant: the share of requests within their latency targets (pure).

A p95 target is a share of requests, so what a tenant is promised is judged over a window of
its requests, not per request. `AttainmentTracker` keeps, per tenant, the outcomes of the
requests that settled in the last `window_s` seconds (at most `max_samples` each) and answers
the share within target. The server feeds it when a request settles (`OrchestratorMetrics`
records every finished request) and shows it in `/v1/orchestrator/status` and `/metrics`; the
simulator's figures use the same per-request rule (`within_targets`).

Invariants: time is whatever monotonic clock the caller passes (seconds); a tenant with no
request in the window has no attainment (None), never 100 %; thread-safe.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_WINDOW_S = 300.0


# refusals for want of capacity (429 with Retry-After): the server could not serve within what
# the policy allows, so they are misses, unlike a client's or the policy's own refusal
CAPACITY_REFUSALS = frozenset({"server_overloaded", "queue_full", "queue_timeout", "profile_lost"})


def judged(status_code: int, code: str | None = None) -> bool:
    """Whether a request with this HTTP status (and error `code`) counts for its tenant's
    attainment: a success does, and so does a server-side failure (5xx) or a refusal for
    capacity (a `CAPACITY_REFUSALS` code), each a miss of every target it had; a client or
    policy refusal (any other 4xx: bad request, bound, budget, cost cap, rate limit) does
    not, since no capacity would have served it within what the policy allows."""
    return status_code < 400 or status_code >= 500 or code in CAPACITY_REFUSALS


def within_targets(measured: Iterable[tuple[float | None, float | None]]) -> bool:
    """True when every (measured, target) pair with a target is met (a missing measurement
    of a set target is a miss: the request never produced what the target times)."""
    return all(t is None or (m is not None and m <= t) for m, t in measured)


@dataclass(frozen=True, slots=True)
class Attainment:
    requests: int  # judged in the window
    within: int  # of those, within every target
    window_s: float

    @property
    def share(self) -> float | None:
        return self.within / self.requests if self.requests else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"requests": self.requests, "within": self.within, "share": self.share,
                "window_s": self.window_s}  # fmt: skip


class AttainmentTracker:
    """Sliding-window share of requests within target, per tenant (see the module docstring)."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, max_samples: int = 20_000) -> None:
        if window_s <= 0 or max_samples < 1:
            raise ValueError("window_s must be > 0 and max_samples >= 1")
        self.window_s = window_s
        self.max_samples = max_samples
        self._lock = threading.Lock()
        self._samples: dict[str, deque[tuple[float, bool]]] = {}
        self._within: dict[str, int] = {}

    def observe(self, tenant: str, within: bool, now: float) -> None:
        """One settled request of `tenant`, judged against its targets."""
        with self._lock:
            q = self._samples.setdefault(tenant, deque())
            q.append((now, within))
            self._within[tenant] = self._within.get(tenant, 0) + int(within)
            self._expire(tenant, now)

    def _expire(self, tenant: str, now: float) -> None:
        q = self._samples[tenant]
        while q and (now - q[0][0] > self.window_s or len(q) > self.max_samples):
            _, ok = q.popleft()
            self._within[tenant] -= int(ok)

    def of(self, tenant: str, now: float) -> Attainment:
        with self._lock:
            if tenant not in self._samples:
                return Attainment(0, 0, self.window_s)
            self._expire(tenant, now)
            return Attainment(len(self._samples[tenant]), self._within[tenant], self.window_s)

    def snapshot(self, now: float) -> dict[str, Attainment]:
        """Every tenant seen, with its attainment over the window ending at `now`."""
        with self._lock:
            tenants = list(self._samples)
        return {t: self.of(t, now) for t in sorted(tenants)}
