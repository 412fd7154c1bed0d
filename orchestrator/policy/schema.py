"""Policy file schema (`apiVersion: orchestrator/v1`, `kind: Policy`): the SRE's contract.

This module describes what a policy file may say; it does not know the catalog. The blocks
live by job: `schema_tenants.py` (per-tenant limits, bounds and the tenants),
`schema_cluster.py` (pricing, autoscaling, scheduling), on the strict base of `schema_base.py`
(every model forbids unknown fields and is frozen). Invariants of the document itself: its
`apiVersion` and `kind` are checked on load; every request class has a reference request
(this file's, else the built-in one). Tenant-name uniqueness is checked with line numbers in
`checks.py`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.concepts import QueryClass
from orchestrator.policy.schema_base import Strict
from orchestrator.policy.schema_cluster import AutoscalingSpec, PricingSpec, SchedulingSpec
from orchestrator.policy.schema_tenants import DefaultTenantSpec, TenantDefaults, TenantSpec

API_VERSION = "orchestrator/v1"
KIND = "Policy"

UnknownKeys = Literal["reject", "default_tenant"]


class ReferenceRequest(Strict):
    """A typical request of a class; used to check SLO feasibility and in `policy explain`."""

    input_tokens: int = Field(ge=1)
    output_tokens: int = Field(ge=1)


DEFAULT_REFERENCE_REQUESTS: dict[str, ReferenceRequest] = {
    "standard": ReferenceRequest(input_tokens=500, output_tokens=250),
    "long_form": ReferenceRequest(input_tokens=500, output_tokens=1500),
    "reasoning": ReferenceRequest(input_tokens=500, output_tokens=4000),
    "long_context": ReferenceRequest(input_tokens=16000, output_tokens=500),
}


class Metadata(Strict):
    name: str | None = None
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class PolicySpec(Strict):
    """A policy file as written. Cross-checks against the catalog happen in `checks.py`."""

    apiVersion: Literal["orchestrator/v1"]  # noqa: N815 (k8s-style key)
    kind: Literal["Policy"]
    metadata: Metadata = Metadata()
    catalog: str | None = Field(
        None,
        description="catalog this policy is written for (CLI hint; relative to this file). "
        "The server always checks the policy against the catalog it serves.",
    )
    unknown_keys: UnknownKeys = Field(
        "reject",
        description="when tenants define keys: reject unknown/missing keys (401) or treat "
        "them as the default tenant",
    )
    defaults: TenantDefaults = Field(
        default_factory=TenantDefaults, description="inherited by every tenant"
    )
    default_tenant: DefaultTenantSpec = Field(default_factory=DefaultTenantSpec)
    tenants: list[TenantSpec] = Field(default_factory=list)
    reference_requests: dict[QueryClass, ReferenceRequest] = Field(default_factory=dict)
    pricing: PricingSpec = Field(default_factory=PricingSpec)
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec,
        description="read by the controller (orchestrator/control: the planner runs in the Ray "
        "Serve controller process as the profiles' autoscaling policy), not by the ingress",
    )
    scheduling: SchedulingSpec = Field(
        default_factory=SchedulingSpec,
        description="the ingress queue's order and bounds, and the engines' request priority",
    )

    def reference_request(self, request_class: QueryClass) -> ReferenceRequest:
        """The typical request of a class (this file's override, else the built-in one)."""
        found = self.reference_requests.get(request_class)
        return found if found is not None else DEFAULT_REFERENCE_REQUESTS[request_class]


def policy_json_schema() -> dict:
    """JSON Schema (draft 2020-12) of a policy file, for editors and CI."""
    schema = PolicySpec.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://orchestrator.dev/schemas/policy-v1.json",
        "title": "orchestrator Policy (orchestrator/v1)",
        **schema,
    }
