"""`SummedCounter`: a scrape sees the running totals per attribute set, as a counter."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from orchestrator.telemetry.summed_counter import SummedCounter


def _points(reader: InMemoryMetricReader) -> dict[tuple, float]:
    data = reader.get_metrics_data()
    metric = data.resource_metrics[0].scope_metrics[0].metrics[0]
    assert metric.data.is_monotonic
    return {tuple(sorted(p.attributes.items())): p.value for p in metric.data.data_points}


def test_totals_per_attribute_set_whatever_the_key_order():
    reader = InMemoryMetricReader()
    counter = SummedCounter(MeterProvider(metric_readers=[reader]).get_meter("t"), "c_total")
    counter.add(1, {"tenant": "a", "profile": "x"})
    counter.add(2, {"profile": "x", "tenant": "a"})
    counter.add(5, {"tenant": "b", "profile": "x"})
    assert _points(reader) == {
        (("profile", "x"), ("tenant", "a")): 3,
        (("profile", "x"), ("tenant", "b")): 5,
    }
    counter.add(1, {"tenant": "b", "profile": "x"})
    assert _points(reader)[(("profile", "x"), ("tenant", "b"))] == 6  # cumulative


def test_adds_from_threads_are_all_counted_and_a_negative_add_is_refused():
    reader = InMemoryMetricReader()
    counter = SummedCounter(MeterProvider(metric_readers=[reader]).get_meter("t"), "c_total")

    def add_many() -> None:
        for _ in range(2000):
            counter.add(1, {"tenant": "a"})

    threads = [threading.Thread(target=add_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _points(reader) == {(("tenant", "a"),): 8000}
    with pytest.raises(ValueError):
        counter.add(-1, {"tenant": "a"})
