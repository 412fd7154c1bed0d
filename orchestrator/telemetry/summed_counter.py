"""A counter summed in the process and read by the exporter when it collects.

    requests = SummedCounter(meter, "orchestrator_requests", unit="{request}", description=...)
    requests.add(1, {"tenant": "acme", "profile": "small"})

An OpenTelemetry `ObservableCounter` whose callback reports the running totals: an `add` is one
locked dict update instead of the SDK's per-measurement path (attribute hashing, view matching,
aggregation), which cost the ingress more than any other part of its per-request bookkeeping.
What a scrape sees is the same monotonic cumulative counter (`_total` in Prometheus), exact at
collection time. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

Attributes = Mapping[str, str]


class SummedCounter:
    """`add(amount, attributes)` like a synchronous OpenTelemetry counter (see module)."""

    def __init__(self, meter: Meter, name: str, *, unit: str = "", description: str = ""):
        self._totals: dict[tuple[tuple[str, str], ...], float] = {}
        self._lock = threading.Lock()
        meter.create_observable_counter(
            name, callbacks=[self._observe], unit=unit, description=description
        )

    def add(self, amount: float, attributes: Attributes) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = tuple(sorted(attributes.items()))
        with self._lock:
            self._totals[key] = self._totals.get(key, 0) + amount

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            totals = list(self._totals.items())
        return [Observation(total, dict(key)) for key, total in totals]
