"""A tenant's spend per calendar budget window, kept in memory: the simulator's ledger.

The server reads spend from the usage ledger (`UsageLedger.spend_windows`); a replay keeps the
same calendar windows (UTC hour, day, month, `ledger.window_bounds`) here, so the budget state
a request is planned against is computed the same way in both (`route_inputs.budget_state`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from orchestrator.ledger import Window, window_bounds


class SpendBook:
    """USD spent per (tenant, window, window start); O(1) per add and per read."""

    def __init__(self) -> None:
        self._usd: dict[tuple[str, Window, datetime], float] = defaultdict(float)

    def add(self, tenant: str, usd: float, at: datetime, windows: Iterable[Window]) -> None:
        """Charge `usd` to the windows holding `at`."""
        for window in windows:
            self._usd[(tenant, window, window_bounds(window, at)[0])] += usd

    def spent(
        self, tenant: str, windows: Iterable[Window], now: datetime
    ) -> dict[str, tuple[float, int]]:
        """(USD spent, whole seconds to the window's end, at least 1) per window at `now`, as
        `route_inputs.spent_of` gives them for the ledger's spend."""
        out: dict[str, tuple[float, int]] = {}
        for window in windows:
            start, end = window_bounds(window, now)
            left = math.ceil((end - now).total_seconds())
            out[window] = (self._usd.get((tenant, window, start), 0.0), max(1, left))
        return out
