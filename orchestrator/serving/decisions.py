"""The decisions of the request path: recorded (routes and refusals alike) and explained.

    written = recorder.record(request_id, incoming, outcome, state)  # worker thread, awaited
    await recorder.put(request_id, tenant, decision)                  # a switched plan's
    found = await recorder.explain(tenant, policy, request_id)        # the decisions endpoint

Writes are group-committed (`GroupWriter`): the decisions of requests decided while a group is
being written go together, one worker-thread job and one transaction.

Invariants: a failed write is logged, never the request's failure; writes land in the order
they were made (a switched plan's decision replaces the one recorded first); a decision is read
back only by its own tenant (when the policy defines keys); the in-memory store keeps the last
`capacity` decisions.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.decisionlog import DecisionInputs, DecisionLog, DecisionPut
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.request.errors import RequestError
from orchestrator.routing.types import Decision
from orchestrator.serving.group_writer import GroupWriter
from orchestrator.serving.incoming import IncomingRequest
from orchestrator.serving.plan import EnginePlan, PlanState, Refused

log = logging.getLogger("orchestrator.ingress")
Offload = Callable[..., Awaitable[Any]]


class DecisionStore:
    """The last `capacity` decisions by request id (per ingress replica), for the decisions
    endpoint. Bounded: the oldest entry goes first."""

    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[str, Decision]] = OrderedDict()

    def put(self, request_id: str, tenant: str, decision: Decision) -> None:
        self._items[request_id] = (tenant, decision)
        self._items.move_to_end(request_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, request_id: str) -> tuple[str, Decision] | None:
        return self._items.get(request_id)

    def __len__(self) -> int:
        return len(self._items)


class DecisionRecorder:
    """Writes decisions (with their inputs where the store keeps them) off the event loop."""

    def __init__(
        self,
        store: DecisionStore | DecisionLog,
        offload: Offload,
        rides_with: GroupWriter[Any] | None = None,
    ):
        self.store = store
        self.offload = offload
        # lazy: a decision is written when its request awaits it (before its answer ends) or
        # with the next group of `rides_with` (the ledger's rows), whichever comes first
        # (in the ledger's database: in its transaction too)
        database = store.db if isinstance(store, DecisionLog) else None
        self._writes = GroupWriter(
            self._store_many, offload, lazy=True, rides_with=rides_with, database=database
        )

    def record(
        self,
        request_id: str,
        incoming: IncomingRequest,
        outcome: EnginePlan | Refused,
        state: PlanState,
        decision: Decision | None = None,
    ) -> Awaitable[None]:
        """Queue a decision (`outcome`'s, or `decision` for it) and its inputs; the caller
        awaits the result before answering, so a client that has its answer finds the
        decision on any replica (a failed write is only logged)."""
        inputs = {
            "views": state.views,
            # the chosen profile's prediction (a refusal: the priced one)
            "prediction": outcome.prediction
            if isinstance(outcome, EnginePlan)
            else outcome.predicted.first,
            "budget_remaining_usd": state.budget.remaining_usd,
            "endpoint": incoming.endpoint,
            "model": incoming.model,
            "stream": incoming.stream,
            "max_tokens": incoming.spec.max_tokens,
        }
        version = state.policy.version
        write = _Write(request_id, incoming.tenant.name, decision or outcome.decision, version,
                       inputs)  # fmt: skip
        return self._logged(self._writes.put(write), request_id)

    async def put(
        self,
        request_id: str,
        tenant: str,
        decision: Decision,
        policy_version: str | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        """Store one decision (group-committed, worker thread); a failed write is only
        logged."""
        write = _Write(request_id, tenant, decision, policy_version, inputs)
        await self._logged(self._writes.put(write), request_id)

    @staticmethod
    async def _logged(written: Awaitable[None], request_id: str) -> None:
        try:
            await written
        except Exception:
            log.warning("could not store the decision of %s", request_id, exc_info=True)

    def _store_many(self, writes: list[_Write]) -> None:
        """Write decisions (worker thread): with their inputs when the store keeps them."""
        if isinstance(self.store, DecisionLog):
            self.store.put_many([w.put() for w in writes])
        else:
            for w in writes:
                self.store.put(w.request_id, w.tenant, w.decision)

    async def explain(self, tenant: TenantPolicy, policy: Policy, request_id: str) -> dict:
        """The stored decision of a request, for its tenant only (404 otherwise)."""
        found = await self.offload(self.store.get, request_id)
        if found is None or (found[0] != tenant.name and policy.defines_keys):
            raise RequestError(
                404, f"no decision recorded for request '{request_id}'", code="decision_not_found"
            )
        return {"request_id": request_id, "tenant": found[0], **found[1].model_dump(mode="json")}


@dataclass(frozen=True, slots=True)
class _Write:
    """One decision to store, its inputs as `record` gathered them (views and figures)."""

    request_id: str
    tenant: str
    decision: Decision
    policy_version: str | None
    inputs: dict[str, Any] | None

    def put(self) -> DecisionPut:
        """The decision log's put (in the worker thread: the inputs are the costly part)."""
        seen = None
        if self.inputs is not None:
            fields = dict(self.inputs)
            seen = DecisionInputs.from_views(fields.pop("views"), **fields)
        return DecisionPut(self.request_id, self.tenant, self.decision, self.policy_version, seen)
