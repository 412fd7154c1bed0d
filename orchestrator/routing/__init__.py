"""Cost-aware routing: the pure decision core (`decide`) and its types.

`orchestrator.routing.replica_router` (the Ray Serve request router) is deliberately not
imported here so the core stays importable without Ray.
"""

from orchestrator.routing.decide import decide
from orchestrator.routing.types import (
    DEFAULT_KNOBS,
    CandidateReport,
    Decision,
    Estimate,
    ProfileView,
    ReasoningSetting,
    Rejection,
    RouteRequest,
    RoutingKnobs,
    TenantRules,
    TokenBudget,
)
from orchestrator.routing.views import catalog_views, profile_view, with_live

__all__ = [
    "DEFAULT_KNOBS",
    "CandidateReport",
    "Decision",
    "Estimate",
    "ProfileView",
    "ReasoningSetting",
    "Rejection",
    "RouteRequest",
    "RoutingKnobs",
    "TenantRules",
    "TokenBudget",
    "catalog_views",
    "decide",
    "profile_view",
    "with_live",
]
