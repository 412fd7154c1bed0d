"""Fair shares between tenants of one priority class: a virtual token counter (VTC, Sheng et
al. 2024, "Fairness in Serving Large Language Models").

Each tenant's counter grows by the tokens it is served divided by its weight: charged the
predicted tokens when a request leaves the queue, corrected to the actual tokens when it
settles. The queue serves the waiting tenant with the smallest counter. A tenant that starts
waiting again is lifted to the smallest counter among the waiting ones, so idle time is not
banked as credit (the counters of two backlogged tenants differ by a bounded amount).
"""

from __future__ import annotations

from collections.abc import Iterable


class VirtualTokenCounter:
    def __init__(self) -> None:
        self._served: dict[str, float] = {}

    def served(self, tenant: str) -> float:
        return self._served.get(tenant, 0.0)

    def lift(self, tenant: str, waiting: Iterable[str]) -> None:
        """`tenant` starts waiting: no lower than the least counter of those already waiting."""
        floor = min((self.served(t) for t in waiting if t != tenant), default=None)
        if floor is not None and self.served(tenant) < floor:
            self._served[tenant] = floor

    def charge(self, tenant: str, tokens: float, weight: float) -> None:
        self._served[tenant] = self.served(tenant) + max(0.0, tokens) / weight

    def correct(self, tenant: str, predicted: float, actual: float, weight: float) -> None:
        """Replace a predicted charge by the actual tokens (never below zero)."""
        self._served[tenant] = max(0.0, self.served(tenant) + (actual - predicted) / weight)

    def least(self, tenants: Iterable[str]) -> str | None:
        """The tenant with the smallest counter (ties: by name, for a stable order)."""
        return min(tenants, key=lambda t: (self.served(t), t), default=None)
