"""`SummedHistogram` exposes what the OpenTelemetry SDK's histogram exposes for the same records."""

from __future__ import annotations

import math
import re

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from orchestrator.telemetry.metrics import E2E_BUCKETS_S, RATIO_BUCKETS
from orchestrator.telemetry.summed_histogram import SummedHistogram

_TARGET = re.compile(r"^(# \w+ )?target(_info)?\b")  # the SDK's resource info, not ours
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
RECORDS = [
    (0.0, {"tenant": "acme", "profile": "small"}),
    (0.1, {"tenant": "acme", "profile": "small"}),  # on an edge: counted in its bucket (le)
    (0.42, {"profile": "small", "tenant": "acme"}),  # the same series in another order
    (3.7, {"tenant": "beta", "profile": "large"}),
    (1e6, {"tenant": "beta", "profile": "large"}),  # above every edge: +Inf only
    (-1.0, {"tenant": "beta", "profile": "large"}),  # ignored, as the SDK does
    (math.nan, {"tenant": "beta", "profile": "large"}),  # ignored
    (2.5, {"tenant": "gamma", "profile": "small", "priority": "1"}),  # another label set
]


def _lines(registry: CollectorRegistry, accept: str) -> list[str]:
    encoder, _ = choose_encoder(accept)
    text = encoder(registry).decode()
    return sorted(line for line in text.splitlines() if not _TARGET.search(line))


def _sdk(name: str, unit: str, buckets: tuple[float, ...], values) -> CollectorRegistry:
    """The SDK's histogram behind its Prometheus exporter, as metrics.py had it."""
    registry = CollectorRegistry(auto_describe=False)
    reader = PrometheusMetricReader(
        scope_info_enabled=False,
        registry=registry,
        resource_attribute_filter=lambda key: key == "service.instance.id",
    )
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "orchestrator", "service.instance.id": "i-0"}),
    )
    histogram = provider.get_meter("orchestrator").create_histogram(
        name, unit=unit, description="Help text", explicit_bucket_boundaries_advisory=buckets
    )
    for value, attrs in values:
        histogram.record(value, attrs)
    return registry


def _ours(name: str, unit: str, buckets: tuple[float, ...], values) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    histogram = SummedHistogram(
        name, unit, "Help text", buckets, labels={"service_instance_id": "i-0"}
    )
    registry.register(histogram)
    for value, attrs in values:
        histogram.record(value, attrs)
    return registry


@pytest.mark.parametrize(
    ("name", "unit", "buckets"),
    [
        ("orchestrator_request_duration", "s", E2E_BUCKETS_S),
        ("orchestrator_prediction_actual_to_p50_ratio", "1", RATIO_BUCKETS),
    ],
)
@pytest.mark.parametrize("accept", ["", OPENMETRICS])
def test_the_exposition_is_the_sdk_histograms(name, unit, buckets, accept):
    sdk, ours = _sdk(name, unit, buckets, RECORDS), _ours(name, unit, buckets, RECORDS)
    expected = _lines(sdk, accept)
    assert any("_bucket" in line for line in expected)
    assert _lines(ours, accept) == expected


def test_nothing_is_exposed_before_the_first_record():
    assert _lines(_ours("orchestrator_queue_wait", "s", (0.1, 1.0), []), "") == []
    assert _lines(_sdk("orchestrator_queue_wait", "s", (0.1, 1.0), []), "") == []
