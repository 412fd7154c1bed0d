"""The shared vocabulary: one definition of each small concept the policy, the catalog, the
predictor, the router, the planner and the simulator all speak.

Pure (pydantic and typing only). Every other module imports these names from here; none
defines its own copy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# --- query class: what kind of request this is (predicted; policy limits vary by it) --------
QueryClass = Literal["standard", "long_form", "reasoning", "long_context"]
QUERY_CLASSES: tuple[QueryClass, ...] = ("standard", "long_form", "reasoning", "long_context")

# --- quality tiers of a profile, weakest first ----------------------------------------------
QualityTier = Literal["small", "medium", "large", "frontier"]
TIER_RANK: dict[str, int] = {"small": 0, "medium": 1, "large": 2, "frontier": 3}

# --- how a profile's reasoning ("thinking") is switched --------------------------------------
ReasoningControl = Literal["none", "enable_thinking", "reasoning_effort"]

# --- actions a policy lists for a request that breaks its cost cap or budget ----------------
Action = Literal["downgrade", "cap_tokens", "reject"]
ACTIONS: tuple[Action, ...] = ("downgrade", "cap_tokens", "reject")
# what a routing decision did: route as asked, or one of the actions
DecisionAction = Literal["route", "downgrade", "cap_tokens", "reject"]


class LatencySLO(BaseModel):
    """Latency objectives at the 95th percentile, in milliseconds (unset = no objective)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft_p95_ms: float | None = Field(None, gt=0, description="time to first token, p95")
    tpot_p95_ms: float | None = Field(None, gt=0, description="time per output token, p95")
    e2e_p95_ms: float | None = Field(None, gt=0, description="end-to-end request latency, p95")


__all__ = [
    "ACTIONS",
    "QUERY_CLASSES",
    "TIER_RANK",
    "Action",
    "DecisionAction",
    "LatencySLO",
    "QualityTier",
    "QueryClass",
    "ReasoningControl",
]
