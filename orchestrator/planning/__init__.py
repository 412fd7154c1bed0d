"""The controller's pure planning core: Observation + Policy + PlanState -> ScalingDecision.

No Ray, no I/O, no clock (time comes in `Observation.now_s`): the server's controller and the
simulator call `plan` unchanged. See docs/controller.md.
"""

from orchestrator.planning.plan import plan
from orchestrator.planning.types import (
    Observation,
    Percentiles,
    PlannerKnobs,
    PlanState,
    ProfileObservation,
    ProfileTarget,
    ScalingDecision,
)

__all__ = [
    "Observation",
    "Percentiles",
    "PlanState",
    "PlannerKnobs",
    "ProfileObservation",
    "ProfileTarget",
    "ScalingDecision",
    "plan",
]
