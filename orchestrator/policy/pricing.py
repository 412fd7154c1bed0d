"""Token prices per profile: explicit prices from the policy win, the rest is derived.

Derivation from the catalog (u = pricing.utilization, the fraction of a replica's capacity
that paying traffic is assumed to use; performance figures are the profile's own, so any
speculative-decoding speed-up is already in them):

    usd_per_second        = price_per_replica_hour_usd / 3600
    output  $/token       = usd_per_second / (performance.output_tokens_per_s  * u)
    input   $/token       = usd_per_second / (performance.prefill_tokens_per_s * u)
    cached input $/token  = input $/token * pricing.cached_input_ratio

Precedence is per field: an explicit `pricing.profiles.<name>.<field>` wins over the derived
value of that field; the cached-input price, when not explicit, follows whichever input price
won. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator.catalog.schema import Profile
from orchestrator.policy.schema import PolicySpec, PricingSpec, ProfilePrice

PriceSource = Literal["explicit", "derived"]
PER_1M = 1_000_000


@dataclass(frozen=True)
class TokenPrices:
    """USD per token for one profile, and where each price came from."""

    profile: str
    input_usd_per_token: float
    cached_input_usd_per_token: float
    output_usd_per_token: float
    input_source: PriceSource
    cached_input_source: PriceSource
    output_source: PriceSource

    @property
    def input_usd_per_1m(self) -> float:
        return self.input_usd_per_token * PER_1M

    @property
    def cached_input_usd_per_1m(self) -> float:
        return self.cached_input_usd_per_token * PER_1M

    @property
    def output_usd_per_1m(self) -> float:
        return self.output_usd_per_token * PER_1M

    def cost_usd(
        self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
    ) -> float:
        """Cost of a request; `input_tokens` is the whole prompt, of which
        `cached_input_tokens` (clamped to [0, input_tokens]) hit the prefix cache.
        Reasoning tokens are output tokens."""
        cached = min(max(cached_input_tokens, 0), max(input_tokens, 0))
        return (
            (max(input_tokens, 0) - cached) * self.input_usd_per_token
            + cached * self.cached_input_usd_per_token
            + max(output_tokens, 0) * self.output_usd_per_token
        )


def _pricing_of(policy: object) -> PricingSpec:
    if policy is None:
        return PricingSpec()
    if isinstance(policy, PricingSpec):
        return policy
    if isinstance(policy, PolicySpec):
        return policy.pricing
    spec = getattr(policy, "spec", None)  # a loaded Policy
    if isinstance(spec, PolicySpec):
        return spec.pricing
    raise TypeError(f"expected a Policy, PolicySpec or PricingSpec, got {type(policy).__name__}")


def token_prices(profile: Profile, policy: object = None) -> TokenPrices:
    """Prices of `profile` under `policy` (a loaded Policy, a PolicySpec, a PricingSpec, or
    None for the defaults: derived prices at 60 % utilization, cached input at 10 %)."""
    pricing = _pricing_of(policy)
    explicit = pricing.profiles.get(profile.name)
    usd_per_s = profile.price_per_replica_hour_usd / 3600.0
    perf = profile.performance
    derived_out = usd_per_s / (perf.output_tokens_per_s * pricing.utilization)
    derived_in = usd_per_s / (perf.prefill_tokens_per_s * pricing.utilization)

    def pick(value_per_1m: float | None, derived: float) -> tuple[float, PriceSource]:
        if value_per_1m is not None:
            return value_per_1m / PER_1M, "explicit"
        return derived, "derived"

    given = explicit or ProfilePrice()
    out, out_src = pick(given.output_usd_per_1m, derived_out)
    inp, in_src = pick(given.input_usd_per_1m, derived_in)
    cached, cached_src = pick(given.cached_input_usd_per_1m, inp * pricing.cached_input_ratio)
    return TokenPrices(
        profile=profile.name,
        input_usd_per_token=inp,
        cached_input_usd_per_token=cached,
        output_usd_per_token=out,
        input_source=in_src,
        cached_input_source=cached_src,
        output_source=out_src,
    )


def replica_cost_per_hour(profile: Profile, replicas: int) -> float:
    """USD per hour for `replicas` replicas of `profile`."""
    return profile.price_per_replica_hour_usd * replicas


HOURS_PER_DAY = 24
HOURS_PER_MONTH = 730  # 365 * 24 / 12, the usual cloud-billing month
