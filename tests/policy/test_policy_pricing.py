"""Token prices: derived from $/replica-hour and throughput; explicit prices win per field."""

from __future__ import annotations

import pytest
from policy_helpers import load

from orchestrator.policy.schema_cluster import PricingSpec, ProfilePrice
from orchestrator.pricing import token_prices


def test_derived_prices_follow_the_documented_formula(gpu_catalog):
    p = gpu_catalog.profile("llama8b-fp8-ngram")  # $1.80/h, 1900 out tok/s, 18000 prefill tok/s
    prices = token_prices(p)  # defaults: utilization 0.6, cached ratio 0.1
    per_s = 1.80 / 3600
    assert prices.output_usd_per_token == pytest.approx(per_s / (1900 * 0.6))
    assert prices.input_usd_per_token == pytest.approx(per_s / (18000 * 0.6))
    assert prices.cached_input_usd_per_token == pytest.approx(prices.input_usd_per_token * 0.1)
    assert prices.output_usd_per_1m == pytest.approx(0.438596, rel=1e-5)
    assert (prices.input_source, prices.cached_input_source, prices.output_source) == (
        "derived",
    ) * 3


def test_lower_utilization_raises_the_price(gpu_catalog):
    p = gpu_catalog.profile("gpt-oss-20b-mxfp4")
    busy = token_prices(p, PricingSpec(utilization=0.8))
    idle = token_prices(p, PricingSpec(utilization=0.4))
    assert idle.output_usd_per_token == pytest.approx(2 * busy.output_usd_per_token)


def test_explicit_prices_win_per_field(gpu_catalog):
    p = gpu_catalog.profile("llama8b-fp8-ngram")
    pricing = PricingSpec(
        cached_input_ratio=0.5,
        profiles={"llama8b-fp8-ngram": ProfilePrice(input_usd_per_1m=0.2, output_usd_per_1m=0.9)},
    )
    prices = token_prices(p, pricing)
    assert prices.output_usd_per_1m == pytest.approx(0.9)
    assert prices.input_usd_per_1m == pytest.approx(0.2)
    # not given: derived from the input price that won
    assert prices.cached_input_usd_per_1m == pytest.approx(0.1)
    assert (prices.input_source, prices.cached_input_source, prices.output_source) == (
        "explicit",
        "derived",
        "explicit",
    )
    other = token_prices(gpu_catalog.profile("gpt-oss-20b-mxfp4"), pricing)
    assert other.output_source == "derived"


def test_explicit_zero_is_a_price(gpu_catalog):
    pricing = PricingSpec(profiles={"llama8b-fp8-ngram": ProfilePrice(output_usd_per_1m=0)})
    prices = token_prices(gpu_catalog.profile("llama8b-fp8-ngram"), pricing)
    assert prices.output_usd_per_token == 0 and prices.output_source == "explicit"


def test_request_cost(gpu_catalog):
    pricing = PricingSpec(
        profiles={
            "llama8b-fp8-ngram": ProfilePrice(
                input_usd_per_1m=1, cached_input_usd_per_1m=0.1, output_usd_per_1m=4
            )
        }
    )
    prices = token_prices(gpu_catalog.profile("llama8b-fp8-ngram"), pricing)
    # 1000 prompt tokens of which 400 cached, 500 output tokens
    expected = (600 * 1 + 400 * 0.1 + 500 * 4) / 1e6
    assert prices.cost_usd(1000, 500, cached_input_tokens=400) == pytest.approx(expected)
    assert prices.cost_usd(1000, 500, cached_input_tokens=5000) == pytest.approx(
        (1000 * 0.1 + 500 * 4) / 1e6
    )
    assert prices.cost_usd(0, 0) == 0


def test_accepts_policy_spec_and_loaded_policy(tmp_path, gpu_catalog):
    body = """
    pricing:
      profiles:
        gpt-oss-20b-mxfp4: {output_usd_per_1m: 2.5}
    """
    policy = load(tmp_path, body, gpu_catalog)
    p = gpu_catalog.profile("gpt-oss-20b-mxfp4")
    for source in (policy, policy.spec, policy.spec.pricing):
        assert token_prices(p, source).output_usd_per_1m == pytest.approx(2.5)
    assert policy.prices["gpt-oss-20b-mxfp4"].output_usd_per_1m == pytest.approx(2.5)
    with pytest.raises(TypeError):
        token_prices(p, "cheap")


def test_local_catalog_prices(local_catalog):
    # $0.04/h, 90 tok/s: ~ $0.21 per 1M output tokens at 60 % utilization
    prices = token_prices(local_catalog.profile("smollm2-cpu"))
    assert prices.output_usd_per_1m == pytest.approx(0.04 / 3600 / (90 * 0.6) * 1e6)
