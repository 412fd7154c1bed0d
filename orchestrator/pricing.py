"""Token prices per profile, and the cost arithmetic on them: the one price model.

The server (router views, reservations, settlement), the policy tools, the tests, bench/ and
the simulator all price with `token_prices`; nothing else derives a price.

Explicit prices from the policy win, the rest is derived.

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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from orchestrator.catalog.schema import Profile

PriceSource = Literal["explicit", "derived"]
PER_1M = 1_000_000
# the policy's `pricing` defaults (policy.schema_cluster.PricingSpec takes them from here)
DEFAULT_UTILIZATION = 0.6
DEFAULT_CACHED_INPUT_RATIO = 0.1


class ExplicitPrices(Protocol):
    """One profile's explicit prices (policy.schema_cluster.ProfilePrice): USD per 1M, None = derive."""

    input_usd_per_1m: float | None
    cached_input_usd_per_1m: float | None
    output_usd_per_1m: float | None


class PricingInputs(Protocol):
    """What prices are derived from (policy.schema_cluster.PricingSpec)."""

    utilization: float
    cached_input_ratio: float
    profiles: Mapping[str, ExplicitPrices]


@dataclass(frozen=True, slots=True)
class _Defaults:
    utilization: float = DEFAULT_UTILIZATION
    cached_input_ratio: float = DEFAULT_CACHED_INPUT_RATIO
    profiles: Mapping[str, ExplicitPrices] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """USD per token for one profile, and where each price came from."""

    input_usd_per_token: float
    cached_input_usd_per_token: float
    output_usd_per_token: float
    profile: str = ""
    input_source: PriceSource = "explicit"
    cached_input_source: PriceSource = "explicit"
    output_source: PriceSource = "explicit"

    @property
    def input_usd_per_1m(self) -> float:
        return self.input_usd_per_token * PER_1M

    @property
    def cached_input_usd_per_1m(self) -> float:
        return self.cached_input_usd_per_token * PER_1M

    @property
    def output_usd_per_1m(self) -> float:
        return self.output_usd_per_token * PER_1M

    def scaled(self, factor: float) -> TokenPrices:
        """Every price times `factor` (sources kept)."""
        return replace(
            self,
            input_usd_per_token=self.input_usd_per_token * factor,
            cached_input_usd_per_token=self.cached_input_usd_per_token * factor,
            output_usd_per_token=self.output_usd_per_token * factor,
        )

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


def _pricing_of(policy: object) -> PricingInputs:
    """The pricing settings of a loaded Policy, a PolicySpec or a PricingSpec (the defaults
    for None); read by shape, so this module sits below the policy package."""
    if policy is None:
        return _Defaults()
    if hasattr(policy, "utilization"):  # a PricingSpec
        return policy  # type: ignore[return-value]
    if hasattr(policy, "pricing"):  # a PolicySpec
        return policy.pricing  # type: ignore[attr-defined, no-any-return]
    spec = getattr(policy, "spec", None)  # a loaded Policy
    if spec is not None and hasattr(spec, "pricing"):
        return spec.pricing  # type: ignore[no-any-return]
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

    out, out_src = pick(explicit and explicit.output_usd_per_1m, derived_out)
    inp, in_src = pick(explicit and explicit.input_usd_per_1m, derived_in)
    cached, cached_src = pick(
        explicit and explicit.cached_input_usd_per_1m, inp * pricing.cached_input_ratio
    )
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

UNLIMITED_TOKENS = 1 << 40


def input_cost_usd(prices: TokenPrices, prompt_tokens: int, cached_share: float) -> float:
    """Cost of a prompt of which `cached_share` is expected to hit the prefix cache."""
    cached = prompt_tokens * cached_share
    return (prompt_tokens - cached) * prices.input_usd_per_token + (
        cached * prices.cached_input_usd_per_token
    )


def affordable_tokens(prices: TokenPrices, input_cost: float, limit_usd: float | None) -> int:
    """Most generated tokens a USD limit pays for after the prompt (`UNLIMITED_TOKENS` if
    unlimited, -1 if the prompt alone is over the limit)."""
    if limit_usd is None:
        return UNLIMITED_TOKENS
    left = limit_usd - input_cost
    if left < 0:
        return -1
    if prices.output_usd_per_token <= 0:
        return UNLIMITED_TOKENS
    # a tiny epsilon keeps exact fits (limit == cost) from rounding one token short
    return min(UNLIMITED_TOKENS, math.floor(left / prices.output_usd_per_token * (1 + 1e-9)))


def opening_cost_usd(
    price_per_replica_hour_usd: float,
    startup_s: float,
    hold_s: float,
    demand_rps: float,
) -> float:
    """Price per request of opening a profile that has no replica running or starting: one
    replica's start-up plus its minimum hold (`hold_s`: it is kept at least the planner's
    scale-down delay), spread over the requests it would get in that time (`demand_rps`
    x (start-up + hold), at least this one). A trickle pays nearly a replica-hold per
    request; demand that fills a replica pays little more than its token price."""
    window_s = max(0.0, startup_s) + max(0.0, hold_s)
    if price_per_replica_hour_usd <= 0 or window_s <= 0:
        return 0.0
    total = price_per_replica_hour_usd * window_s / 3600.0
    return total / max(1.0, demand_rps * window_s)
