"""The scheduling settings in force: the policy's `scheduling:` block resolved per tenant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.concepts import QueryClass
from orchestrator.policy.model import Policy
from orchestrator.policy.schema_cluster import SchedulingSpec, wait_bound_s
from orchestrator.scheduling.headroom import may_borrow, may_start_short
from orchestrator.scheduling.key import OrderKey, engine_priority, order_key, predicted_work
from orchestrator.scheduling.replicas import work_xargs

_RESOLVED: dict[str, SchedulingSettings] = {}  # policy version -> its settings

# the priority class of background work (batch lines): below every tenant's (policy >= 0)
BACKGROUND_PRIORITY = -1


@dataclass(frozen=True)
class TenantShare:
    """One tenant's place in the queue: its priority class, fair-share weight, queue bound,
    (when it waits in deadline order) its TTFT target per request class, and its wait bound per
    request class (`wait_bound_s`; a class not listed: `max_wait_s`, None: no bound)."""

    priority: int = 0
    weight: float = 1.0
    max_queued: int = 1000
    deadline_ms: Mapping[str, float] = field(default_factory=dict)  # request class -> TTFT p95
    max_wait_by_class_s: Mapping[str, float | None] = field(default_factory=dict)
    max_wait_s: float | None = None


@dataclass(frozen=True)
class SchedulingSettings:
    """What the queue and the engines' priority read; a hot reload swaps the whole object."""

    order: Literal["predicted", "fcfs"] = "predicted"
    aging_s: float = 30.0
    default: TenantShare = TenantShare()
    tenants: Mapping[str, TenantShare] = field(default_factory=dict)
    fair_headroom: float = 0.0  # share of the batch slots lent to tenants below their share
    short_work_tokens: int = 0  # predicted work that may start beyond a full batch (0: off)

    def share(self, tenant: str) -> TenantShare:
        return self.tenants.get(tenant, self.default)

    def weight(self, tenant: str) -> float:
        return self.share(tenant).weight

    def may_borrow(
        self, tenant: str, slots: int, busy: int, held: Mapping[str, int], waiting: Iterable[str]
    ) -> bool:
        """A request of `tenant` may start beyond the profile's busy `slots` (`headroom.py`)."""
        return may_borrow(
            tenant,
            slots=slots,
            busy=busy,
            held=held,
            waiting=waiting,
            weight=self.weight,
            headroom=self.fair_headroom,
        )

    def may_start_short(self, work: float, busy: int, seats: int) -> bool:
        """A request predicted to need `work` may start beyond the busy batch slots, into a
        free engine seat (`headroom.py`, short lane; only in predicted order)."""
        if self.order != "predicted":
            return False
        return may_start_short(
            work, busy=busy, seats=seats, short_work_tokens=self.short_work_tokens
        )

    def deadline_ms(self, tenant: str, request_class: QueryClass | str) -> float | None:
        """The tenant's TTFT target for the class when it waits in deadline order, else None."""
        return self.share(tenant).deadline_ms.get(request_class)

    def max_wait_s(self, tenant: str, request_class: QueryClass | str) -> float | None:
        """Seconds a request of `tenant` and `request_class` may wait queued (None: no bound)."""
        share = self.share(tenant)
        return share.max_wait_by_class_s.get(request_class, share.max_wait_s)

    def priority(self, tenant: str, *, background: bool = False) -> int:
        """The priority class a request of `tenant` is ordered in (a `background` request, a
        batch line, below every tenant's); the order key's class is its negation."""
        return BACKGROUND_PRIORITY if background else self.share(tenant).priority

    def key_for(
        self,
        tenant: str,
        request_class: str,
        work: float,
        now: float,
        seq: int = 0,
        *,
        background: bool = False,
    ) -> OrderKey:
        """The order key of a request of `tenant` arriving `now` with `work` predicted; a
        `background` request (a batch line) ranks below every tenant's priority class."""
        deadline_ms = self.deadline_ms(tenant, request_class)
        return order_key(
            arrival_s=now,
            priority=self.priority(tenant, background=background),
            work=work,
            aging_s=self.aging_s,
            seq=seq,
            deadline_s=None if deadline_ms is None else now + deadline_ms / 1000.0,
            fcfs=self.order == "fcfs",
        )

    def engine_priority(
        self, tenant: str, request_class: str, work: float, now: float, *, background: bool = False
    ) -> int:
        """vLLM's `priority` for the request: the key's class and aging, so each engine's
        waiting queue follows the ingress order's classes, with `work` the prefill-weighted
        work (`key.predicted_work`): what an engine's waiting queue waits for is a prefill,
        not a batch slot (0 for every request under `order: fcfs`)."""
        key = self.key_for(tenant, request_class, work, now, background=background)
        return engine_priority(key, fcfs=self.order == "fcfs")

    def engine_fields(
        self,
        tenant: str,
        request_class: str,
        prompt_tokens: int,
        predicted_tokens: float,
        now: float,
        client_xargs: Mapping[str, object] | None = None,
        *,
        background: bool = False,
    ) -> dict[str, object]:
        """What the ingress sets on the engine request: vLLM's `priority` (the queue's key)
        and the prediction in `vllm_xargs` for the replica router (the client's own kept)."""
        work = predicted_work(prompt_tokens, predicted_tokens)
        return {
            "priority": self.engine_priority(
                tenant, request_class, work, now, background=background
            ),
            "vllm_xargs": {**(client_xargs or {}), **work_xargs(prompt_tokens, predicted_tokens)},
        }

    @classmethod
    def of(cls, policy: Policy) -> SchedulingSettings:
        """`resolve`, remembered for the last few policy versions (the request path asks)."""
        found = _RESOLVED.get(policy.version)
        if found is None:
            if len(_RESOLVED) >= 8:
                _RESOLVED.clear()
            found = _RESOLVED[policy.version] = cls.resolve(policy)
        return found

    @classmethod
    def resolve(cls, policy: Policy) -> SchedulingSettings:
        """Resolve `policy.spec.scheduling` for every tenant (priority from the tenant)."""
        spec: SchedulingSpec = policy.spec.scheduling
        tenants = {}
        for t in policy.tenants.values():
            own = spec.for_tenant(t.name)
            deadlines: dict[str, float] = {}
            if own.deadline:
                for rc, lim in t.classes.items():
                    if lim.latency.ttft_p95_ms is not None:
                        deadlines[rc] = lim.latency.ttft_p95_ms
            waits = {
                rc: wait_bound_s(own.max_wait_s, lim.latency.ttft_p95_ms)
                for rc, lim in t.classes.items()
            }
            tenants[t.name] = TenantShare(
                t.priority,
                own.weight,
                own.max_queued,
                deadlines,
                waits,
                wait_bound_s(own.max_wait_s, None),
            )
        default = tenants.get(policy.default_tenant.name) or TenantShare(
            weight=spec.weight,
            max_queued=spec.max_queued,
            max_wait_s=wait_bound_s(spec.max_wait_s, None),
        )
        return cls(
            spec.order, spec.aging_s, default, tenants, spec.fair_headroom, spec.short_work_tokens
        )
