"""After a request: what it really cost, and the durable record of it.

`actual_cost_usd`, `usage_record` and `StreamTally` are pure; `Accountant` owns the I/O (ledger
append, predictor calibration) and runs it off the event loop; `RequestSettlement` closes one
routed request. Invariants: one ledger row per request id (the ledger ignores repeats),
written once the request has ended (so a crash mid-request leaves no half record); a stream cut
short is charged for the tokens it carried up to the cut (`StreamTally`), never for none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.ledger import Status, UsageLedger, UsageRecord
from orchestrator.pricing import TokenPrices
from orchestrator.serving.background_batches import BackgroundBatches
from orchestrator.serving.group_writer import GroupWriter, Offload

log = logging.getLogger("orchestrator.accounting")


@dataclass(frozen=True)
class EngineUsage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> EngineUsage:
        if not usage:
            return cls()
        prompt = int(usage.get("prompt_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        out_details = usage.get("completion_tokens_details") or {}
        reasoning = (
            int(out_details.get("reasoning_tokens") or 0) if isinstance(out_details, dict) else 0
        )
        output = int(usage.get("completion_tokens") or 0)
        return cls(prompt, min(cached, prompt), output, min(reasoning, output))

    def __add__(self, other: EngineUsage) -> EngineUsage:
        return EngineUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


def actual_cost_usd(prices: TokenPrices, usage: EngineUsage) -> float:
    return prices.cost_usd(usage.prompt_tokens, usage.output_tokens, usage.cached_tokens)


@dataclass
class RequestTrace:
    """What the ingress learns about one request while serving it."""

    request_id: str
    tenant: str
    profile: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    first_token_at: datetime | None = None
    finished_at: datetime | None = None  # set once, when the request is settled
    predicted_p50: int | None = None
    predicted_p90: int | None = None
    estimated_cost_usd: float | None = None
    reserved_usd: float = 0.0

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = datetime.now(UTC)

    @property
    def ttft_s(self) -> float | None:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.started_at).total_seconds()

    def mark_finished(self) -> None:
        if self.finished_at is None:
            self.finished_at = datetime.now(UTC)

    def tpot_s(self, tokens_per_choice: float) -> float | None:
        """Seconds per output token after the first (None without both ends or 2 tokens)."""
        if self.first_token_at is None or self.finished_at is None or tokens_per_choice < 2:
            return None
        return (self.finished_at - self.first_token_at).total_seconds() / (tokens_per_choice - 1)


def usage_record(
    trace: RequestTrace, usage: EngineUsage, cost_usd: float, status: str = "ok"
) -> UsageRecord:
    finished = trace.finished_at or datetime.now(UTC)
    ttft = trace.ttft_s * 1000 if trace.ttft_s is not None else None
    return UsageRecord(
        request_id=trace.request_id,
        tenant=trace.tenant,
        profile=trace.profile,
        prompt_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        predicted_p50=trace.predicted_p50,
        predicted_p90=trace.predicted_p90,
        estimated_cost_usd=trace.estimated_cost_usd,
        cost_usd=max(cost_usd, 0.0),
        latency_ms=(finished - trace.started_at).total_seconds() * 1000,
        ttft_ms=ttft,
        status=status,  # type: ignore[arg-type]
        started_at=trace.started_at,
        finished_at=finished,
    )


class Accountant:
    """Writes usage records and feeds the predictor's calibration, off the event loop.

    Group-committed (`GroupWriter`): the rows of requests that settle while a group is being
    written go together, one worker-thread job and one ledger transaction; each request still
    waits for its own row to commit. The calibration follows, best effort, in batches
    (`BackgroundBatches`: one store transaction for the rows committed within ~0.1 s)."""

    def __init__(
        self, ledger: UsageLedger, predictor: Any | None, offload: Offload = asyncio.to_thread
    ):
        self.ledger = ledger
        self.predictor = predictor
        # the rows' group commit (lazy writers, e.g. decisions, may ride its jobs; those in
        # the ledger's database share its transaction)
        self.writes: GroupWriter[tuple[UsageRecord, Any, Any, int | None]] = GroupWriter(
            self._write_many, offload, database=getattr(ledger, "db", None)
        )
        # the calibration of committed rows, in batches (one store transaction each)
        self.learning: BackgroundBatches[tuple[UsageRecord, Any, Any, int | None]] = (
            BackgroundBatches(self._learn, offload)
        )

    def _write_many(self, rows: list[tuple[UsageRecord, Any, Any, int | None]]) -> None:
        """Worker thread: the rows in one transaction."""
        if len(rows) == 1:
            self.ledger.settle(rows[0][0])
        else:
            self.ledger.settle_many([record for record, _, _, _ in rows])

    def _learn(self, rows: list[tuple[UsageRecord, Any, Any, int | None]]) -> None:
        """Worker thread, committed rows in the order they settled: the calibration of each
        (with the cap each answer ran under, so a cut answer is learned as censored)."""
        if self.predictor is None:
            return
        learned = [
            (profile, prediction, record.output_tokens, record.reasoning_tokens, cap)
            for record, profile, prediction, cap in rows
            if prediction is not None and record.status == "ok"
        ]
        many = getattr(self.predictor, "observe_many", None)
        if many is not None and len(learned) > 1:
            try:  # one calibration transaction for the group (all or nothing)
                many(learned)
                return
            except Exception:  # then each alone: a bad one fails only itself
                pass
        for item in learned:
            try:
                self.predictor.observe(*item)
            except Exception:  # calibration is best effort; the ledger row is what counts
                log.warning("predictor calibration update failed", exc_info=True)

    async def record(
        self, record: UsageRecord, profile: Any, prediction: Any, max_tokens: int | None = None
    ) -> None:
        """Write off the event loop. Shielded: a request cancelled while its row is being
        written (a client gone mid-stream) still gets its row. `max_tokens`: the per-choice
        cap the engine was sent (None: the client's or the context room, which the prediction
        knows)."""
        row = (record, profile, prediction, max_tokens)
        try:
            await self.writes.write(row)
        except Exception:
            log.exception("could not write usage record %s", record.request_id)
            return
        if self.predictor is not None:
            self.learning.put(row)  # taught within ~0.1 s, with the rows settled meanwhile

    async def learned(self) -> None:
        """Wait until every committed row so far has taught the predictor."""
        await self.learning.drain()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _carries_output(choice: Mapping[str, Any]) -> bool:
    """Whether a stream choice holds generated output (text, reasoning, tool calls, token ids)
    or ends the choice; vLLM's first chat chunk (role only, empty content) does not."""
    if choice.get("finish_reason") or choice.get("text") or choice.get("token_ids"):
        return True
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return False
    return any(delta.get(k) for k in ("content", "reasoning", "reasoning_content", "tool_calls"))


@dataclass
class StreamTally:
    """What a relayed stream carried so far, to charge a stream that ends before its usage
    chunk (client gone, engine failure).

    Per choice index it keeps the engine's cumulative `completion_tokens` from per-chunk usage
    (vLLM's `continuous_usage_stats`; exact), the number of token ids the chunks carried
    (`return_token_ids`; exact), and the number of chunks that carried output (a lower bound
    when neither is there: a chunk holds one or more tokens, e.g. with speculative decoding).
    The engine is asked for one of the exact two (`openai_io.engine_stream_options`).
    Invariant: `usage()` counts, per choice, the largest of the three, so it never reports
    fewer tokens than the client was sent.
    """

    usage_tokens: dict[int, int] = field(default_factory=dict)
    reasoning_tokens: dict[int, int] = field(default_factory=dict)
    output_chunks: dict[int, int] = field(default_factory=dict)
    id_tokens: dict[int, int] = field(default_factory=dict)
    prompt_tokens: int | None = None

    def add(self, chunk: Mapping[str, Any]) -> None:
        """Count one parsed stream chunk (any shape; what is not understood is ignored)."""
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return  # the final usage-only chunk, errors: settled from their own usage
        usage = chunk.get("usage")
        usage = usage if isinstance(usage, dict) else None
        prompt_ids = chunk.get("prompt_token_ids")
        if isinstance(prompt_ids, list) and self.prompt_tokens is None:
            self.prompt_tokens = len(prompt_ids)
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = _int(choice.get("index")) or 0
            if _carries_output(choice):
                self.output_chunks[index] = self.output_chunks.get(index, 0) + 1
            ids = choice.get("token_ids")
            if isinstance(ids, list):
                self.id_tokens[index] = self.id_tokens.get(index, 0) + len(ids)
            prompt_ids = choice.get("prompt_token_ids")  # completions: on the choice
            if isinstance(prompt_ids, list) and self.prompt_tokens is None:
                self.prompt_tokens = len(prompt_ids)
            if usage is None:
                continue
            completion = _int(usage.get("completion_tokens"))
            if completion is not None:
                self.usage_tokens[index] = max(self.usage_tokens.get(index, 0), completion)
            details = usage.get("completion_tokens_details")
            reasoning = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else None
            if reasoning is not None:
                self.reasoning_tokens[index] = max(self.reasoning_tokens.get(index, 0), reasoning)
        prompt = _int(usage.get("prompt_tokens")) if usage else None
        if prompt is not None:
            self.prompt_tokens = max(self.prompt_tokens or 0, prompt)

    def usage(self, fallback_prompt_tokens: int) -> EngineUsage:
        """Tokens so far; prompt tokens from the engine when it reported them, else
        `fallback_prompt_tokens` (the prediction's count in the profile's tokenizer)."""
        indices = self.usage_tokens.keys() | self.output_chunks.keys() | self.id_tokens.keys()
        output = sum(
            max(self.usage_tokens.get(i, 0), self.id_tokens.get(i, 0), self.output_chunks.get(i, 0))
            for i in indices
        )
        reasoning = min(sum(self.reasoning_tokens.values()), output)
        prompt = self.prompt_tokens if self.prompt_tokens is not None else fallback_prompt_tokens
        return EngineUsage(
            prompt_tokens=max(prompt, 0), output_tokens=output, reasoning_tokens=reasoning
        )


class RequestSettlement:
    """Ends one routed request exactly once: releases its in-flight reservation, prices what
    the engine did, reports it (`observe`: metrics and trace) and writes its ledger row.

    Invariant: only the first `settle` acts; later calls return the first call's cost, so a
    stream's usage chunk and its clean-up can both call it safely. A stream carried to another
    engine (`migrate`) is still one row: every leg's tokens are summed and each leg is priced
    with its own profile's prices; a migrated stream that completes is `migrated`, never `ok`.
    """

    def __init__(
        self,
        accountant: Accountant,
        trace: RequestTrace,
        prices: TokenPrices,
        *,
        profile: Any,
        prediction: Any,
        max_tokens: int | None,
        release: Callable[[], None],
        observe: Callable[[Status, EngineUsage, float], None],
    ):
        self.accountant = accountant
        self.trace = trace
        self.prices = prices
        self.profile = profile
        self.prediction = prediction
        self.max_tokens = max_tokens  # per choice, as sent to the engine (None: no cap set)
        self._release = release
        self._observe = observe
        self._cost: float | None = None
        self._legs: list[tuple[EngineUsage, TokenPrices]] = []

    @property
    def settled(self) -> bool:
        return self._cost is not None

    @property
    def migrated(self) -> bool:
        return bool(self._legs)

    def migrate(self, done: EngineUsage, next_prices: TokenPrices) -> None:
        """The engine failed after `done`; the rest runs on a profile with `next_prices`."""
        self._legs.append((done, self.prices))
        self.prices = next_prices

    def abandon(self) -> None:
        """The request ends without a settlement (refused or gone before any engine ran, so
        no ledger row): the run's hooks are dropped as `settle` drops them, freeing the run
        by reference counting. Settling afterwards releases and observes nothing."""
        self._release, self._observe = _spent, _spent

    async def settle(self, usage: EngineUsage, status: Status = "ok") -> float:
        """Charge `usage` (the current leg's) with `status`; returns the cost in USD."""
        if self._cost is not None:
            return self._cost
        cost = max(actual_cost_usd(self.prices, usage), 0.0)
        for leg, prices in self._legs:
            cost += max(actual_cost_usd(prices, leg), 0.0)
            usage = usage + leg
        if self._legs and status == "ok":
            status = "migrated"
        self._cost = cost
        self.trace.mark_finished()
        # the hooks are the run's bound methods (run -> settlement -> run): dropped once
        # used, so a settled request is freed by reference counting, not left to Python's
        # cyclic collector (whose young collections this kept busy: ~60 objects a request)
        release, observe = self._release, self._observe
        self._release, self._observe = _spent, _spent
        release()
        observe(status, usage, cost)
        await self.accountant.record(
            usage_record(self.trace, usage, cost, status),
            self.profile,
            self.prediction,
            self.max_tokens,
        )
        return cost


def _spent(*_args: Any) -> None:
    """A settlement's hooks once it has called them (settling acts once)."""
