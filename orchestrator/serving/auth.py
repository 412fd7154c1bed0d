"""Who a request is from: the tenant named by its API key (or a batch line's tenant)."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.policy import Policy, TenantPolicy
from orchestrator.request.errors import RequestError


def authenticate(
    headers: Mapping[str, str], policy: Policy, as_tenant: str | None = None
) -> TenantPolicy:
    """The tenant named by `Authorization: Bearer <key>` (401 for a key the policy does not
    know; with no keys in the policy, everyone is the default tenant), or a batch line's
    `as_tenant` (authenticated when its job was created; 401 once a reload removed it)."""
    if as_tenant is not None:
        if as_tenant not in policy.tenants:
            raise RequestError(
                401, f"tenant {as_tenant!r} is not in the policy in force", code="invalid_api_key"
            )
        return policy.tenants[as_tenant]
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    key = token.strip() if scheme.lower() == "bearer" else None
    tenant = policy.resolve_tenant(key or None)
    if tenant is None:
        message = (
            "Incorrect API key provided."
            if key
            else "Missing API key: send Authorization: Bearer <key>."
        )
        raise RequestError(401, message, param="Authorization", code="invalid_api_key")
    return tenant
