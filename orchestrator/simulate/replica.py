"""The per-request replica model: one vLLM replica of a profile in virtual time.

Shape (docs/benchmark.md, "Replica model", says why):
- a replica admits up to `max_concurrency` requests (the KV capacity the catalog states); the
  rest wait in its FIFO queue, as in vLLM's scheduler;
- an admitted request is prefilled first: its prefill compute (prompt / prefill rate) queues
  behind the replica's earlier prefills, and its first token comes the shared model's TTFT
  (`orchestrator.replica_model.ttft_ms`: base + prefill slowed by the batch's load) after
  its prefill starts;
- a long prefill does not hold back other prompts when the catalog sets vLLM's
  `long_prefill_token_threshold` (`engine_args`): vLLM's scheduler then caps every request's
  chunk, running or waiting, at that many tokens a step (vllm/v1/core/sched/scheduler.py),
  so up to `max_num_batched_tokens` / threshold prefills (4 at vLLM's 8192 on an H100) share
  each step in equal chunks: processor sharing of the prefill rate among that many, the rest
  waiting for a chunk in vLLM's waiting order (priority, then arrival). A prefill admitted
  beside others delays each of them by at most its own work, so their first tokens move
  later (`Job.due_s`; the cluster re-queues a first token that moved). Without the option
  vLLM schedules the running prefill's chunk first, and prompts queue behind it (a FIFO
  prefill stage);
- after that it decodes in processor sharing with the other decoding requests: with n of them,
  each makes `stream_tokens_per_s(n)` tokens per second, the shared model's per-stream speed
  (aggregate rising from the single-stream to the full-batch figure, speculative speed-up
  fading with load). Rates are tabulated per n once per profile, never re-derived here;
- a decode progress counter V (tokens per stream since the replica started) turns PS into
  O(log n) per event: a request finishes when V reaches its start V plus its tokens.
- prefix sharing: a request carrying prefix blocks (`Job.blocks`, Mooncake's `hash_ids` of
  `BLOCK_TOKENS` tokens each) skips the prefill of its leading blocks the replica holds in its
  KV cache (an LRU of `ReplicaSpec.kv_blocks` blocks), as vLLM's prefix caching does; its
  blocks are then held there;
- speed: `ReplicaSpec.of(profile, speed=x)` runs the replica at x times the catalog's
  throughput figures (decode, single stream, prefill), while the router and the planner keep
  reading the catalog: how a plan holds when the figures are wrong (docs/benchmark.md).
Billing: from the scale-up decision (the GPU is paid while the engine loads) until the
replica is stopped; a draining replica takes no new request and stops when its last ends.
"""

from __future__ import annotations

import bisect
import heapq
from collections import OrderedDict
from dataclasses import dataclass, field

from orchestrator import replica_model as est
from orchestrator.catalog.schema import Profile
from orchestrator.concepts import LatencySLO
from orchestrator.replica_model import ReplicaPerformance, performance_of
from orchestrator.routing.types import DEFAULT_KNOBS, RoutingKnobs

DEFAULT_STARTUP_S = 120.0
BLOCK_TOKENS = 512  # Mooncake's prefix block (its hash_ids)
# vLLM's step budget when the catalog sets none (its online default on an H100-class GPU;
# the profiles setting the threshold run on 80 GB+ GPUs)
DEFAULT_STEP_TOKENS = 8192
KV_BLOCKS_PER_SLOT = 16  # prefix blocks a replica keeps per batch slot (8k tokens each)


def serve_max_ongoing(profile: Profile) -> int:
    """The `max_ongoing_requests` the product deploys the profile with (one source)."""
    return profile.max_ongoing_requests


@dataclass(frozen=True)
class ReplicaSpec:
    """What the model needs of one profile, tabulated from the shared latency model."""

    name: str
    price_per_hour: float
    cap: int
    startup_s: float
    perf: ReplicaPerformance
    rate: tuple[float, ...]  # rate[n] = tokens/s per stream with n decoding (rate[0] unused)
    knobs: RoutingKnobs
    max_ongoing: int  # Serve's max_ongoing_requests per replica (more wait in Serve's queue)
    speed: float = 1.0  # real throughput / the catalog's figures
    # requests the engine batches at most (`max_num_seqs`, else Serve's bound): beyond `cap`
    # only requests the ingress lends headroom to (`scheduling.headroom`), sharing the
    # throughput at `cap` (the rate table runs to it)
    engine_cap: int = 0
    # vLLM's `long_prefill_token_threshold` (the profile's `engine_args`; 0: not set): the
    # prefills in progress share the prefill rate instead of queueing one after another
    long_prefill_tokens: int = 0
    # prefills vLLM advances at once with the threshold set: its step budget
    # (`max_num_batched_tokens`, default 8192 on an 80 GB GPU) / the threshold
    prefill_chunks: int = 1

    @property
    def kv_blocks(self) -> int:
        return self.cap * KV_BLOCKS_PER_SLOT

    @classmethod
    def of(
        cls, profile: Profile, knobs: RoutingKnobs = DEFAULT_KNOBS, *, speed: float = 1.0
    ) -> ReplicaSpec:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        startup = getattr(profile.replicas, "startup_s", None)
        startup_s = float(startup) if startup is not None else DEFAULT_STARTUP_S
        perf = performance_of(profile, cold_start_ms=1000.0 * startup_s)
        if speed != 1.0:
            perf = perf.model_copy(
                update={
                    "single_stream_tokens_per_s": perf.single_stream_tokens_per_s * speed,
                    "output_tokens_per_s": perf.output_tokens_per_s * speed,
                    "prefill_tokens_per_s": perf.prefill_tokens_per_s * speed,
                }
            )
        cap = perf.max_concurrency
        engine_cap = profile.engine_seats
        threshold = int(profile.engine_args.get("long_prefill_token_threshold") or 0)
        budget = int(profile.engine_args.get("max_num_batched_tokens") or DEFAULT_STEP_TOKENS)
        rate = (0.0, *(est.stream_tokens_per_s(perf, n) for n in range(1, cap + 1)))
        full = rate[cap] * cap  # beyond the full-speed batch the throughput is shared
        rate += tuple(full / n for n in range(cap + 1, engine_cap + 1))
        return cls(
            profile.name,
            profile.price_per_replica_hour_usd,
            cap,
            startup_s,
            perf,
            rate,
            knobs,
            serve_max_ongoing(profile),
            speed,
            engine_cap,
            threshold,
            max(1, budget // threshold) if threshold else 1,
        )

    def prefill_s(self, prompt_tokens: int, batch: int) -> float:
        """Prefill time (TTFT without queueing) with `batch` requests already admitted."""
        n = min(batch, self.cap - 1) + 1
        slowdown = self.knobs.prefill_load_slowdown
        return est.ttft_ms(self.perf, prompt_tokens, n, prefill_load_slowdown=slowdown) / 1000.0

    def capacity(
        self, slo: LatencySLO, prompt_tokens: float, output_tokens: float
    ) -> tuple[int, float]:
        """(streams, output tokens/s) one replica carries while a request of this size meets
        the TTFT/TPOT of `slo`: the shared model's `capacity_at_slo` (at least one stream)."""
        cap = est.capacity_at_slo(
            self.perf,
            slo,
            prompt_tokens,
            max(1, round(output_tokens)),
            prefill_load_slowdown=self.knobs.prefill_load_slowdown,
        )
        if cap.concurrency == 0:  # not even alone: one stream is what a replica gives
            return 1, est.aggregate_tokens_per_s(self.perf, 1)
        return cap.concurrency, cap.output_tokens_per_s


@dataclass(slots=True, eq=False)
class Job:
    """A request while on a replica."""

    rid: int
    prompt_tokens: int
    tokens: int  # tokens to generate (>= 1)
    arrival_s: float
    placed_s: float = -1.0  # when a replica took it (the ingress queue's wait ends)
    first_s: float = -1.0
    due_s: float = -1.0  # first-token time as now planned (prefills admitted beside move it)
    prefill_overhead_s: float = 0.0  # its TTFT beyond the prefill compute (base, load)
    v_end: float = 0.0
    # scheduling (orchestrator.scheduling): who sent it, its predicted work, vLLM's priority
    tenant: str = "default"
    request_class: str = "standard"
    predicted: float = 0.0  # predicted output tokens
    work: float = 0.0  # predicted work (decode-token equivalents), see scheduling.key
    priority: int = 0  # the engine's waiting order (0 for all: vLLM's arrival order)
    charged: float = 0.0  # what the fair-share counter was charged for it
    borrowed: bool = False  # started beyond the batch slots (fair headroom)
    blocks: tuple = ()  # prefix block ids (shared prefixes), if the trace has them
    cached_tokens: int = 0  # prompt tokens found in the replica's prefix cache
    sized: float = 0.0  # output tokens the planner sized it at (0: not sized)


class PrefixCache:
    """The prefix blocks one replica's KV cache holds (LRU, `capacity` blocks)."""

    __slots__ = ("blocks", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.blocks: OrderedDict = OrderedDict()

    def leading_hits(self, blocks: tuple) -> int:
        """How many of `blocks`, from the first, are held (a prefix: stops at the first miss)."""
        n = 0
        for b in blocks:
            if b not in self.blocks:
                break
            n += 1
        return n

    def hold(self, blocks: tuple) -> None:
        for b in blocks:
            self.blocks[b] = None
            self.blocks.move_to_end(b)
        while len(self.blocks) > self.capacity:
            self.blocks.popitem(last=False)


STARTING, READY, DRAINING, STOPPED = "starting", "ready", "draining", "stopped"


@dataclass(slots=True, eq=False)
class Replica:
    spec: ReplicaSpec
    rid: int
    started_s: float  # billing starts
    ready_s: float
    state: str = STARTING
    stopped_s: float = -1.0
    waiting: list = field(default_factory=list)  # heap (priority, seq, Job) over the KV capacity
    outstanding: float = 0.0  # predicted work of the jobs it holds (the replica choice reads it)
    admitted: int = 0  # prefilling + decoding
    prefill_free_s: float = 0.0  # the FIFO prefill stage's end (no threshold)
    # prefills sharing the prefill rate (threshold set): sorted (end in prefill_v, rid, Job)
    prefilling: list = field(default_factory=list)
    # waiting for a chunk, in vLLM's waiting order: heap (priority, rid, prefill s, Job)
    prefill_queue: list = field(default_factory=list)
    prefill_v: float = 0.0  # prefill work each of them has had (seconds at the full rate)
    prefill_v_at: float = 0.0
    decoding: list = field(default_factory=list)  # heap of (v_end, seq, Job)
    v: float = 0.0  # decode progress per stream
    v_at: float = 0.0  # time v was last advanced
    version: int = 0  # bumps when the next-finish time changes (stale events are skipped)
    served: int = 0
    prefix: PrefixCache | None = None  # made on the first request carrying prefix blocks

    @property
    def load(self) -> int:
        return self.admitted + len(self.waiting)

    def advance(self, now: float) -> None:
        n = len(self.decoding)
        if n:
            self.v += self.spec.rate[n] * (now - self.v_at)
        self.v_at = now

    def next_finish_s(self) -> float | None:
        if not self.decoding:
            return None
        v_end = self.decoding[0][0]
        return self.v_at + max(0.0, v_end - self.v) / self.spec.rate[len(self.decoding)]

    def admit(self, job: Job, now: float) -> float:
        """Start the job's prefill; returns its first-token time as planned now (`due_s`).

        The prefill compute (uncached prompt / prefill rate) runs in the replica's prefill
        stage: one after another without the threshold, shared with the threshold
        (`_share_prefill`); the first token comes the shared model's TTFT beyond that compute
        (base overhead, prefill slowed by the batch's load) after the compute ends.
        """
        work = job.prompt_tokens
        if job.blocks:  # the leading blocks this replica holds need no prefill
            if self.prefix is None:
                self.prefix = PrefixCache(self.spec.kv_blocks)
            hit = self.prefix.leading_hits(job.blocks)
            job.cached_tokens = min(hit * BLOCK_TOKENS, job.prompt_tokens - 1)
            self.prefix.hold(job.blocks)
            work -= job.cached_tokens
        own = work / self.spec.perf.prefill_tokens_per_s
        alone = self.spec.prefill_s(work, self.admitted)
        if self.spec.long_prefill_tokens:
            self._share_prefill(job, own, max(0.0, alone - own), now)
        else:
            job.due_s = max(now, self.prefill_free_s) + alone
            self.prefill_free_s = max(now, self.prefill_free_s) + own
        self.admitted += 1
        return job.due_s

    def prefill_backlog_tokens(self, now: float) -> float:
        """Prompt tokens still to prefill at `now`: the prefills in progress and waiting for a
        chunk (their uncached part; the FIFO stage's remaining work without the threshold)
        and, whole, the requests waiting for a batch slot (what the replica choice reads as
        `scheduling.ReplicaLoad.prefill_tokens`)."""
        rate = self.spec.perf.prefill_tokens_per_s
        if self.spec.long_prefill_tokens:
            self.prefill_v = self._advance_prefill(now)  # lazy state brought to now
            v = self.prefill_v
            s = sum(end - v for end, _, _ in self.prefilling)
            s += sum(own for _, _, own, _ in self.prefill_queue)
        else:
            s = max(0.0, self.prefill_free_s - now)
        return s * rate + sum(job.prompt_tokens for _, _, job in self.waiting)

    def _share_prefill(self, job: Job, own: float, overhead: float, now: float) -> None:
        """Processor sharing of the prefill rate among at most `prefill_chunks` prefills
        (the rest wait in vLLM's order: priority, then arrival): `prefill_v` is the prefill
        work (seconds at the full rate) each of them has had, growing at 1/m a second with m
        of them. `job` joins; every prefill's end, and so its first token (`Job.due_s`), is
        re-derived (an arrival only ever delays the others)."""
        self.prefill_v = self._advance_prefill(now)
        job.prefill_overhead_s = overhead
        heapq.heappush(self.prefill_queue, (job.priority, job.rid, own, job))
        self._project_prefill(now)

    def _advance_prefill(self, now: float) -> float:
        """Run the shared prefill stage from `prefill_v_at` to `now`: the prefills that
        ended leave and the waiting take their chunks; returns the work each has had."""
        active, queue, k = self.prefilling, self.prefill_queue, self.spec.prefill_chunks
        t, v = self.prefill_v_at, self.prefill_v
        while True:
            while queue and len(active) < k:
                _, _, own, j = heapq.heappop(queue)
                bisect.insort(active, (v + own, j.rid, j))
            if not active:
                break
            done = t + (active[0][0] - v) * len(active)
            if done > now:
                v += (now - t) / len(active)
                break
            t, v = done, active[0][0]
            active.pop(0)
        self.prefill_v_at = now
        return v

    def _project_prefill(self, now: float) -> None:
        """Every prefill's end if nothing else arrives, and its first token from it."""
        active, queue = list(self.prefilling), list(self.prefill_queue)
        k = self.spec.prefill_chunks
        t, v = now, self.prefill_v
        while active or queue:
            while queue and len(active) < k:
                _, _, own, j = heapq.heappop(queue)
                bisect.insort(active, (v + own, j.rid, j))
            target, _, j = active.pop(0)
            t += (target - v) * (len(active) + 1)
            v = target
            j.due_s = t + j.prefill_overhead_s

    def start_decoding(self, job: Job, now: float, seq: int) -> None:
        self.advance(now)
        job.v_end = self.v + max(0, job.tokens - 1)
        heapq.heappush(self.decoding, (job.v_end, seq, job))
        self.version += 1

    def pop_finished(self, now: float) -> Job:
        self.advance(now)
        _, _, job = heapq.heappop(self.decoding)
        self.admitted -= 1
        self.served += 1
        self.version += 1
        return job

    def hours(self, from_s: float, end_s: float) -> float:
        """Billed hours within [from_s, end_s]: from the scale-up decision to the stop."""
        stop = self.stopped_s if self.stopped_s >= 0 else end_s
        return max(0.0, stop - max(self.started_s, from_s)) / 3600.0
