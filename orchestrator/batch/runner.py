"""The batch loop of one ingress replica: claim lines by pace, run them, record, finalize.

Every `tick_s` the runner gives lapsed leases back, expires overdue jobs, finalizes finished
ones, asks `pacing.plan` how many lines each job may start, claims that many (a lease in the
shared store, so replicas never run the same line) and runs each through `run_line` (the
request executor, as a request of the job's tenant: predicted, priced, budget-checked, routed
and charged like any request, under the line's request id).

Invariants:
- a line's request id is `<batch id>-L<line>`: the ledger's idempotency key, so a line that
  is run again after its replica died mid-answer is still charged once;
- a refusal for capacity (429 `server_overloaded`, `queue_full`, `queue_timeout` or
  `profile_lost`, 503) gives the line back to run later (at most `max_attempts` claims); a
  budget refusal fails the line and stops the job with the reason in its error file; any other 4xx fails the line with the engine's error body;
- leases of running lines are renewed while they run, so only a dead replica's lines lapse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.attainment import CAPACITY_REFUSALS
from orchestrator.batch import pacing
from orchestrator.batch.store import DONE, FAILED, BatchStore, ClaimedLine

log = logging.getLogger("orchestrator.batch")

RETRY_CODES = CAPACITY_REFUSALS | {"no_healthy_profile", "engine_unavailable"}
BUDGET_CODES = frozenset({"budget_exhausted"})


@dataclass(frozen=True, slots=True)
class LineResult:
    status_code: int
    body: Any  # the JSON answer (or OpenAI error JSON)
    cost_usd: float = 0.0

    @property
    def error_code(self) -> str | None:
        if self.status_code < 400 or not isinstance(self.body, dict):
            return None
        error = self.body.get("error")
        return str(error.get("code")) if isinstance(error, dict) and error.get("code") else None


class LineRunner(Protocol):
    """Runs one line as a request of `tenant` (the executor's non-streamed path)."""

    def __call__(
        self, tenant: str, endpoint: str, body: dict[str, Any], request_id: str
    ) -> Awaitable[LineResult]: ...


@dataclass(frozen=True, slots=True)
class Capacity:
    """The interactive load now: utilisation of the running profiles' slots, free slots, and
    the one-request-at-a-time replicas' interactive traffic (None: there are none)."""

    utilization: float
    free_slots: int
    exclusive: pacing.Yield | None = None


class BatchRunner:
    """Runs the stored jobs' lines from this replica (see the module docstring)."""

    def __init__(
        self,
        store: BatchStore,
        run_line: LineRunner,
        *,
        owner: str,
        tenant_cap: Callable[[str], int],
        capacity: Callable[[], Capacity],
        tenant_yield_s: Callable[[str], float] = lambda _tenant: 0.0,
        offload: Callable[..., Awaitable[Any]] = asyncio.to_thread,
        clock: Callable[[], float] = time.time,
        tick_s: float = 1.0,
        lease_s: float = 120.0,
        max_attempts: int = 5,
    ) -> None:
        self.store = store
        self.run_line = run_line
        self.owner = owner
        self.tenant_cap = tenant_cap
        self.capacity = capacity
        self.tenant_yield_s = tenant_yield_s
        self.offload = offload
        self.clock = clock
        self.tick_s = tick_s
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.running: dict[tuple[str, int], ClaimedLine] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.last_paces: dict[str, pacing.Pace] = {}
        self._last_renew = 0.0

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the database may be briefly away: the next tick retries
                log.warning("batch tick failed", exc_info=True)
            await asyncio.sleep(self.tick_s)

    async def tick(self) -> None:
        """One round: leases, expiry, finalization, then start what the pace allows."""
        now = self.clock()
        await self.offload(self.store.reclaim_lapsed, now)
        await self._renew(now)
        await self.offload(self.store.expire_overdue, now)
        await self.offload(self.store.finalize_ready, now)
        jobs = await self.offload(self.store.active_jobs, now)
        if not jobs:
            self.last_paces = {}
            return
        running_by_tenant: dict[str, int] = defaultdict(int)
        for job in jobs:
            running_by_tenant[job.tenant] += job.running
        load = self.capacity()
        paces = pacing.plan(
            [j for j in jobs if j.pending or j.running],
            now,
            tenant_cap=self.tenant_cap,
            running_by_tenant=running_by_tenant,
            utilization=load.utilization,
            free_slots=load.free_slots,
            exclusive=load.exclusive,
            tenant_yield_s=self.tenant_yield_s,
        )
        self.last_paces = {p.batch_id: p for p in paces}
        for pace in paces:
            if pace.start <= 0:
                continue
            claimed = await self.offload(
                self.store.claim, pace.batch_id, self.owner, pace.start, now, lease_s=self.lease_s
            )
            for line in claimed:
                self._start(line)

    async def drain(self) -> None:
        """Wait for the lines this replica is running (tests; shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def _start(self, line: ClaimedLine) -> None:
        self.running[(line.batch_id, line.line_no)] = line
        task = asyncio.get_running_loop().create_task(self._run(line))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, line: ClaimedLine) -> None:
        try:
            try:
                result = await self.run_line(line.tenant, line.endpoint, line.body, line.request_id)
            except Exception as exc:  # the engine or the path failed: try again later
                log.warning("batch line %s failed: %r", line.request_id, exc)
                result = LineResult(500, {"error": {"message": str(exc), "code": "internal_error"}})
            await self._record(line, result)
        finally:
            self.running.pop((line.batch_id, line.line_no), None)

    async def _record(self, line: ClaimedLine, result: LineResult) -> None:
        now = self.clock()
        code = result.error_code
        retry = result.status_code >= 500 or code in RETRY_CODES
        if retry and line.attempts < self.max_attempts:
            await self.offload(self.store.release, line, self.owner)
            return
        state = DONE if result.status_code < 400 else FAILED
        await self.offload(
            self.store.finish_line, line, self.owner, state, result.status_code, result.body,
            result.cost_usd, now,
        )  # fmt: skip
        if code in BUDGET_CODES:
            message = _message(result.body) or "the tenant's budget ran out"
            await self.offload(self.store.stop, line.batch_id, code, message, now)

    async def _renew(self, now: float) -> None:
        if not self.running or now - self._last_renew < self.lease_s / 3:
            return
        self._last_renew = now
        await self.offload(self.store.renew, list(self.running.values()), self.owner,
                           now + self.lease_s)  # fmt: skip


def _message(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or "") or None
    return None
