"""The controller's pure planning core: Observation + Policy + ScalingTickState -> ScalingDecision.

No Ray, no I/O, no clock (time comes in `Observation.now_s`): the server's controller and the
simulator call `plan` unchanged. See docs/controller.md.
"""

from orchestrator.planning.tick import plan
from orchestrator.planning.types import (
    Observation,
    Percentiles,
    PlannerKnobs,
    ProfileObservation,
    ProfileTarget,
    ScalingDecision,
    ScalingTickState,
)

__all__ = [
    "Observation",
    "Percentiles",
    "ScalingTickState",
    "PlannerKnobs",
    "ProfileObservation",
    "ProfileTarget",
    "ScalingDecision",
    "plan",
]
