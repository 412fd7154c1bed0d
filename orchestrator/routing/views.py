"""Build `ProfileView`s from the catalog (the one source of truth for prices and capacity).

Per-token prices come from the replica's hourly price and its capacity, i.e. what a token
costs when the replica is fully used:
- output: price per second / aggregate `output_tokens_per_s`;
- input: price per second / `prefill_tokens_per_s`;
- cached input: input x `cached_input_discount` (a prefix-cache hit skips the prefill compute).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.routing.types import LiveState, ProfilePerformance, ProfilePrices, ProfileView

DEFAULT_CACHED_INPUT_DISCOUNT = 0.1


def prices_for(
    profile: Profile, cached_input_discount: float = DEFAULT_CACHED_INPUT_DISCOUNT
) -> ProfilePrices:
    """USD per token at full utilisation of one replica."""
    per_s = profile.price_per_replica_hour_usd / 3600.0
    perf = profile.performance
    input_price = per_s / perf.prefill_tokens_per_s
    return ProfilePrices(
        input=input_price,
        cached_input=input_price * cached_input_discount,
        output=per_s / perf.output_tokens_per_s,
    )


def profile_view(
    profile: Profile,
    live: LiveState | None = None,
    *,
    cold_start_ms: float = 120_000.0,
    cached_input_discount: float = DEFAULT_CACHED_INPUT_DISCOUNT,
    prices: ProfilePrices | None = None,
) -> ProfileView:
    """The router's view of one catalog profile; `live` defaults to `replicas.initial/min`;
    `prices` (e.g. the policy's) replace the catalog-derived `prices_for`."""
    perf = profile.performance
    if live is None:
        initial = profile.replicas.initial
        live = LiveState(replicas_running=initial if initial is not None else profile.replicas.min)
    spec = profile.speculative
    return ProfileView(
        name=profile.name,
        family=profile.served_model_name,
        max_model_len=profile.max_model_len,
        quality_tier=profile.quality.tier,
        reasoning_supported=profile.reasoning.supported,
        reasoning_control=profile.reasoning.control,
        reasoning_default_on=profile.reasoning.default_on,
        tool_calling=profile.tool_call_parser is not None,
        prices=prices or prices_for(profile, cached_input_discount),
        performance=ProfilePerformance(
            single_stream_tokens_per_s=perf.single_stream_tokens_per_s,
            output_tokens_per_s=perf.output_tokens_per_s,
            prefill_tokens_per_s=perf.prefill_tokens_per_s,
            max_concurrency=perf.max_concurrency,
            ttft_ms_base=perf.ttft_ms_base,
            spec_expected_speedup=spec.expected_speedup if spec is not None else 1.0,
            cold_start_ms=cold_start_ms,
        ),
        live=live,
    )


def catalog_views(
    catalog: Catalog, live: Mapping[str, LiveState] | None = None
) -> list[ProfileView]:
    """Views of every profile, with live state where known."""
    live = live or {}
    return [profile_view(p, live.get(p.name)) for p in catalog.profiles]


def with_live(views: Iterable[ProfileView], live: Mapping[str, LiveState]) -> list[ProfileView]:
    """Cheap per-request refresh of the live part only (no re-validation of the rest)."""
    return [v.model_copy(update={"live": live[v.name]}) if v.name in live else v for v in views]
