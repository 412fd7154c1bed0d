"""How many ingress replicas Serve runs: bounds and the ongoing-request target (pure settings).

Serve scales the ingress deployment by its ongoing requests (the requests each replica is
handling, streams included) towards `target_ongoing_requests` per replica, within
[min_replicas, max_replicas]. Set by `orchestrator serve --ingress-min-replicas/...`, the app
args `ingress_*` and the chart's `ingress` values; the default is one replica, which is all a
SQLite ledger allows (`storage_target.check_ingress_replicas`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

# an ingress request mostly waits on its engine (seconds), so its concurrency is set by the
# engines' latency, not by the ingress's CPU; Serve admits up to MAX_ONGOING per replica
INGRESS_MAX_ONGOING_REQUESTS = 1000
INGRESS_TARGET_ONGOING_REQUESTS = 200.0
# Serve's own defaults for its delays: the ingress is not planned by the controller, so it
# keeps Serve's hysteresis (30 s of sustained load to add a replica, 10 min idle to drop one)
INGRESS_UPSCALE_DELAY_S = 30.0
INGRESS_DOWNSCALE_DELAY_S = 600.0


class IngressScaling(BaseModel):
    """Replica bounds of the ingress deployment and the load that adds a replica."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(1, ge=1, description="ingress replicas Serve always runs")
    max_replicas: int = Field(1, ge=1, description="ingress replicas Serve may scale out to")
    target_ongoing_requests: float = Field(
        INGRESS_TARGET_ONGOING_REQUESTS,
        gt=0,
        le=INGRESS_MAX_ONGOING_REQUESTS,
        description="ongoing requests per ingress replica Serve scales towards",
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> IngressScaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"ingress min replicas ({self.min_replicas}) exceeds max replicas "
                f"({self.max_replicas})"
            )
        return self
