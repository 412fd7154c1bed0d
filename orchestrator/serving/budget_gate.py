"""The budget gate of the request path: read the tenant's spend, hold a plan's worst case,
re-plan once when the shared budget refuses it, renew and expire holds.

    spends, held = await gate.read(tenant)            # one worker-thread call
    budget = gate.state(tenant, spends, held)          # what the plan is made against
    plan = await gate.hold(plan, request_id, state)    # EnginePlan (held) | Refused

Invariants: the ledger's `reserve` is atomic per tenant, so holds are exact across replicas;
a hold granted to a request cancelled meanwhile is released; this replica's own holds (the
load book's `reserved_usd`) count the requests decided since the last ledger read, and the
larger of the two counts none twice; a replica that dies renews nothing and its holds lapse.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from orchestrator.ledger import Reservation, UsageLedger, WindowSpend
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.request import route_inputs
from orchestrator.routing.types import Rejection
from orchestrator.serving import budget_export
from orchestrator.serving.load_book import LoadBook
from orchestrator.serving.plan import EnginePlan, PlanState, Refused, replan
from orchestrator.telemetry import OrchestratorMetrics

log = logging.getLogger("orchestrator.ingress")
Offload = Callable[..., Awaitable[Any]]


class BudgetGate:
    """Reads, holds, renews and expires a tenant's budget in the usage ledger."""

    def __init__(
        self,
        ledger: UsageLedger,
        metrics: OrchestratorMetrics,
        load: LoadBook,
        *,
        clock: Callable[[], datetime],
        offload: Offload,
        ttl_s: float,
    ):
        self.ledger = ledger
        self.metrics = metrics
        self.load = load
        self.clock = clock
        self.offload = offload
        self.ttl_s = ttl_s  # a hold outlives a dead replica this long
        self._background: set[asyncio.Future[Any]] = set()

    async def read(self, tenant: TenantPolicy) -> tuple[dict[str, WindowSpend], float]:
        """The tenant's ledger spend in every window it has a limit on and the budget every
        replica holds for its requests in flight: one worker-thread call (nothing without
        limits); the budget gauges are refreshed from it."""
        limits = route_inputs.budget_limits(tenant.budgets)
        if not limits:
            return {}, 0.0
        now = self.clock()
        spends, held = await self.offload(spend_and_holds, self.ledger, tenant.name, limits, now)
        budget_export.set_window_gauges(self.metrics, tenant.name, limits, spends)
        return spends, held

    def state(
        self, tenant: TenantPolicy, spends: Mapping[str, WindowSpend], held_usd: float = 0.0
    ) -> route_inputs.BudgetState:
        """Remaining budget: the ledger's spend minus the holds in flight (every replica's
        `held_usd`, read with the spend, or this replica's own, whichever is larger)."""
        if not route_inputs.budget_limits(tenant.budgets):
            return route_inputs.BudgetState(None, None)
        spent = route_inputs.spent_of(spends, self.clock())
        held = max(held_usd, self.load.reserved_usd(tenant.name))
        return route_inputs.budget_state(tenant.budgets, spent, held)

    async def budget_state(self, tenant: TenantPolicy) -> route_inputs.BudgetState:
        """Remaining budget as a request would be planned against it now."""
        return self.state(tenant, *await self.read(tenant))

    async def reserve(self, engine_plan: EnginePlan, request_id: str) -> Reservation | None:
        """Hold the plan's worst-case cost in the ledger (None: the tenant has no budget).
        The hold is shielded: a request cancelled meanwhile releases what was granted."""
        tenant = engine_plan.request.tenant
        limits = route_inputs.budget_limits(tenant.budgets)
        if not limits:
            return None
        task = asyncio.ensure_future(
            self.offload(
                self.ledger.reserve,
                tenant.name,
                request_id,
                engine_plan.reserved_usd,
                limits,
                now=self.clock(),
                ttl_s=self.ttl_s,
            )
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda t: self._release_if_granted(t, request_id))
            raise

    async def hold(
        self, engine_plan: EnginePlan, request_id: str, state: PlanState | None
    ) -> EnginePlan | Refused:
        """The plan, once its cost is held; refused, the request is planned once more against
        what the budget has left (cap, downgrade or 429 as the policy says) and held again;
        refused twice, the 429 with the window's Retry-After."""
        held = await self.reserve(engine_plan, request_id)
        if held is None or held.granted:
            return engine_plan
        retry_after = max(1, int(held.retry_after_s or 1))
        if state is not None:
            budget = route_inputs.BudgetState(held.remaining_usd, retry_after)
            again = replan(engine_plan, dataclasses.replace(state, budget=budget), request_id)
            if isinstance(again, Refused):
                return again
            second = await self.reserve(again, request_id)
            if second is None or second.granted:
                return again
            retry_after = max(1, int(second.retry_after_s or 1))
        log.info("budget hold refused", extra={"tenant": engine_plan.request.tenant.name})
        return refused_hold(engine_plan, retry_after)

    async def renew(self) -> int:
        """Push the expiry of this replica's holds for requests still running to a full TTL
        from now (run well within the TTL: a stream longer than it keeps its hold)."""
        running = self.load.running()
        if not running:
            return 0
        now, ttl_s = self.clock(), self.ttl_s
        return await self.offload(lambda: self.ledger.renew(running, now=now, ttl_s=ttl_s))

    async def expire(self) -> int:
        """Drop holds past their expiry (a replica that died); any replica may run it."""
        return await self.offload(self.ledger.expire, self.clock())

    async def export(self, policy: Policy) -> None:
        """Budget remaining and spend rate of every reachable tenant with a budget (run
        before each /metrics scrape)."""
        await self.offload(
            budget_export.export_budgets, self.ledger, self.metrics, policy, self.clock()
        )

    async def settled(self) -> None:
        """Wait for the releases still running in the background (holds granted to requests
        cancelled while they were being granted)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def release(self, request_id: str) -> None:
        """Release the request's hold in the background (it ends without generating)."""
        release = asyncio.ensure_future(self.offload(self.ledger.release, request_id))
        self._background.add(release)
        release.add_done_callback(self._background.discard)

    def _release_if_granted(self, task: asyncio.Future[Any], request_id: str) -> None:
        if task.cancelled() or task.exception() is not None or not task.result().granted:
            return
        self.release(request_id)


def refused_hold(engine_plan: EnginePlan, retry_after_s: int) -> Refused:
    """The 429 for a request whose budget hold the ledger refused (as the budget path's)."""
    decision = engine_plan.decision.model_copy(
        update={
            "action": "reject",
            "profile": None,
            "rejection": Rejection(
                status=429,
                code="budget_exhausted",
                message="the tenant's budget is held by requests in flight or spent; "
                f"retry after {retry_after_s} s",
                retry_after_s=retry_after_s,
            ),
        }
    )
    request = engine_plan.request
    return Refused(request.spec, request.tenant, decision, engine_plan.predicted)


def spend_and_holds(
    ledger: UsageLedger, tenant: str, limits: Mapping[str, float], now: datetime
) -> tuple[dict[str, WindowSpend], float]:
    """Spend per limited window and every replica's live holds (worker thread)."""
    return ledger.spend_windows(tenant, list(limits), now=now), ledger.reserved_usd(tenant, now=now)
