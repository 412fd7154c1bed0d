"""Helpers for the scheduling tests: a hand-driven clock, settings, policies and queue items."""

from __future__ import annotations

from orchestrator.catalog import Catalog
from orchestrator.policy import Policy, load_policy_text
from orchestrator.scheduling import SchedulingSettings, TenantShare, Waiting, WaitQueue
from tests.policy.policy_helpers import policy_text


class Clock:
    """Virtual time the tests move by hand (the queue reads it through `__call__`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def policy_of(body: str, catalog: Catalog) -> Policy:
    return load_policy_text(
        policy_text(body), "policy.yaml", catalog, env={"KA": "a", "KB": "b", "KC": "c"}
    )


def settings(**tenants: TenantShare) -> SchedulingSettings:
    return SchedulingSettings(tenants=tenants, default=TenantShare(max_queued=1000))


def item(rid: str, tenant: str = "default", tokens: float = 100.0, **kw) -> Waiting:
    return Waiting(rid, tenant, predicted_tokens=tokens, **kw)


def drain(queue: WaitQueue) -> list[str]:
    out = []
    while (got := queue.pop()) is not None:
        out.append(got.item.request_id)
    return out
