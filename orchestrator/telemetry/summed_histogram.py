"""A histogram summed in the process and exposed by the ingress's Prometheus registry.

    e2e = SummedHistogram("orchestrator_request_duration", "s", "End-to-end time", (0.1, 1.0),
                          labels={"service_instance_id": "ingress-0"})
    registry.register(e2e)                           # a prometheus_client collector
    e2e.record(0.42, {"tenant": "acme", "profile": "small"})

What the OpenTelemetry SDK's explicit-bucket histogram would expose through its Prometheus
exporter (the same family name, unit, help, sorted label names, `le` edges, cumulative bucket
counts and sum; a series per attribute set; nothing until the first record; non-finite and
negative values ignored with a warning), for a `record` that is one locked update of a list
instead of the SDK's per-measurement path (a `Measurement`, attribute cleaning and hashing,
view matching, two locks): ~1 us instead of ~5, three times per request. Thread-safe.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.core import HistogramMetricFamily

log = logging.getLogger(__name__)

UNITS = {"s": "seconds", "1": ""}  # UCUM unit -> Prometheus suffix, as the exporter maps them


class SummedHistogram:
    """`record(value, attributes)` like a synchronous OpenTelemetry histogram (see module)."""

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        buckets: Sequence[float],
        *,
        labels: Mapping[str, str] | None = None,
    ):
        self.name, self.description = name, description
        self.unit = UNITS.get(unit, unit)
        self.buckets = tuple(float(b) for b in buckets)
        self._labels = dict(labels or {})  # on every series (the resource's instance id)
        self._series: dict[tuple[tuple[str, str], ...], list[float]] = {}  # counts..., sum
        self._lock = threading.Lock()

    def record(self, amount: float, attributes: Mapping[str, str]) -> None:
        if not math.isfinite(amount) or amount < 0:
            log.warning("histogram %s ignores %s (finite, non-negative only)", self.name, amount)
            return
        key = tuple(sorted(attributes.items()))
        slot = bisect_left(self.buckets, amount)
        with self._lock:
            row = self._series.get(key)
            if row is None:
                row = self._series[key] = [0] * (len(self.buckets) + 1) + [0]
            row[slot] += 1
            row[-1] += amount

    def collect(self) -> Iterable[HistogramMetricFamily]:
        """The family as the OpenTelemetry exporter builds it (prometheus_client collector)."""
        with self._lock:
            series = [(dict(key), list(row)) for key, row in self._series.items()]
        if not series:
            return []
        names = sorted({*self._labels, *(k for attrs, _ in series for k in attrs)})
        family = HistogramMetricFamily(self.name, self.description, labels=names, unit=self.unit)
        edges = [f"{edge}" for edge in self.buckets] + ["+Inf"]
        for attrs, row in series:
            values = {**self._labels, **attrs}
            total, cumulative = 0, []
            for edge, count in zip(edges, row[:-1], strict=True):
                total += count
                cumulative.append((edge, total))
            family.add_metric([values.get(n, "") for n in names], cumulative, sum_value=row[-1])
        return [family]
