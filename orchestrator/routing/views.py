"""Build `ProfileView`s from the catalog (the one source of truth for capacity) and a policy's
pricing (the one price model, `orchestrator.pricing.token_prices`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.pricing import TokenPrices, token_prices
from orchestrator.replica_model import LiveState, performance_of
from orchestrator.routing.types import ProfileView


def profile_view(
    profile: Profile,
    live: LiveState | None = None,
    *,
    cold_start_ms: float | None = None,
    prices: TokenPrices | None = None,
) -> ProfileView:
    """The router's view of one catalog profile; `live` defaults to `replicas.start`;
    `cold_start_ms` (a new request's wait with no replica running or starting) to the
    catalog's `replicas.startup_s`; `prices` to `token_prices(profile)` (the policy defaults)."""
    if cold_start_ms is None:
        cold_start_ms = 1000.0 * profile.replicas.startup_s
    if live is None:
        live = LiveState(replicas_running=profile.replicas.start)
    return ProfileView(
        name=profile.name,
        family=profile.served_model_name,
        max_model_len=profile.max_model_len,
        quality_tier=profile.quality.tier,
        reasoning_supported=profile.reasoning.supported,
        reasoning_control=profile.reasoning.control,
        reasoning_default_on=profile.reasoning.default_on,
        tool_calling=profile.tool_call_parser is not None,
        prices=prices or token_prices(profile),
        replica_usd_per_hour=profile.price_per_replica_hour_usd,
        performance=performance_of(profile, cold_start_ms=cold_start_ms),
        live=live,
    )


def catalog_views(
    catalog: Catalog, live: Mapping[str, LiveState] | None = None, pricing: object = None
) -> list[ProfileView]:
    """Views of every profile, with live state where known, priced under `pricing` (a Policy,
    PolicySpec or PricingSpec; None = the policy defaults)."""
    live = live or {}
    return [
        profile_view(p, live.get(p.name), prices=token_prices(p, pricing)) for p in catalog.profiles
    ]


def with_live(views: Iterable[ProfileView], live: Mapping[str, LiveState]) -> list[ProfileView]:
    """Cheap per-request refresh of the live part only (no re-validation of the rest)."""
    return [v.model_copy(update={"live": live[v.name]}) if v.name in live else v for v in views]
