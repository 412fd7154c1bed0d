"""CPU per request of the ingress's own request path, in process (no Ray, no HTTP).

    python3 bench/ingress_core.py [--requests 2000] [--concurrency 8] [--rounds 3]
                                  [--same-prompt] [--profile out.pstats]

`RequestExecutor.serve` (what the ingress replica's `_serve` awaits: authenticate, parse,
validate, predict, plan, record, hold, send, settle, answer) over the stub catalog
(`deployments/stub.yaml`), the shipped policy, the real predictor and a SQLite ledger and
decision log in a temporary state dir, with an engine handle answering at once with the
stub's one-token `ChatCompletionResponse` (unpickled per call, as a Serve handle delivers
it). The bench sends what `bench/control_plane.py`'s closed loop sends: one-token
non-streamed chats, each with a new user message (`--same-prompt`: one text every time).

Reported per round: process CPU per request (event loop and the group commit's worker
threads) and the event loop thread's own CPU per request (`time.thread_time`), in
microseconds; `--profile` writes a cProfile of the last round (event loop thread only).
What it leaves out is what plain Ray Serve LLM pays too (Serve's proxy hop, the handle call
to the engine replica, Starlette). Figures on this shared machine move with its load: compare
runs made one after the other (A B A B).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.decisionlog import DecisionLog  # noqa: E402
from orchestrator.ledger import UsageLedger  # noqa: E402
from orchestrator.paths import DEFAULT_POLICY  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.predict import Predictor  # noqa: E402
from orchestrator.predict.features import clear_token_cache  # noqa: E402
from orchestrator.serving.executor import RequestExecutor  # noqa: E402
from orchestrator.serving.heap import StartupHeap  # noqa: E402
from orchestrator.telemetry import OrchestratorMetrics  # noqa: E402

STUB_CATALOG = ROOT / "deployments" / "stub.yaml"
PROMPT = "Summarise in one sentence why rivers in Europe flow the way they do. " * 3


def stub_answer() -> bytes:
    """The stub engine's one-token chat answer, pickled (a Serve handle unpickles it)."""
    from ray.serve.llm.openai_api_models import ChatCompletionResponse

    body = {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " lorem"},
                "logprobs": None,
                "finish_reason": "length",
                "stop_reason": None,
            }
        ],
        "usage": {"prompt_tokens": 60, "total_tokens": 61, "completion_tokens": 1},
    }
    return pickle.dumps(ChatCompletionResponse.model_validate(body))


class _Answer:
    """One engine call's stream: the answer, then the end."""

    def __init__(self, packet: bytes):
        self.packet: bytes | None = packet

    def __aiter__(self) -> _Answer:
        return self

    async def __anext__(self) -> Any:
        if self.packet is None:
            raise StopAsyncIteration
        packet, self.packet = self.packet, None
        await asyncio.sleep(0)  # the engine's answer comes back on a later loop turn
        return pickle.loads(packet)

    def cancel(self) -> None:
        self.packet = None


def build(state: Path) -> RequestExecutor:
    catalog = load_catalog(STUB_CATALOG)
    policy = load_policy(DEFAULT_POLICY, catalog)
    ledger = UsageLedger(state / "usage.sqlite3")
    packet = stub_answer()
    handle = SimpleNamespace(chat=SimpleNamespace(remote=lambda request, info: _Answer(packet)))
    return RequestExecutor(
        catalog=catalog,
        policy_source=SimpleNamespace(current=policy),
        predictor=Predictor.default(state),
        ledger=ledger,
        metrics=OrchestratorMetrics(instance_id="bench-0"),
        handles=lambda name: handle,
        ready={p.name: True for p in catalog.profiles},
        running={p.name: 1 for p in catalog.profiles},
        decisions=DecisionLog(ledger.db),
    )


async def run_round(
    ex: RequestExecutor,
    heap: StartupHeap,
    n: int,
    concurrency: int,
    same: bool,
    sent: itertools.count,
) -> tuple[float, float, int]:
    """(process CPU s, loop thread CPU s, errors) for `n` requests at `concurrency`."""
    todo = iter(range(n))
    errors = 0

    async def client() -> None:
        nonlocal errors
        for _ in todo:
            text = PROMPT if same else f"Request {next(sent)}: {PROMPT}"
            body = {"model": "stub-model", "messages": [{"role": "user", "content": text}],
                    "max_tokens": 1, "stream": False}  # fmt: skip
            raw = json.dumps(body).encode()
            response = await ex.serve({}, raw, "chat", f"req-{next(sent)}")
            errors += response.status_code != 200
            heap.request_done()  # as the ingress replica does

    cpu0, thread0 = time.process_time(), time.thread_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    await ex.accountant.learned()  # the calibration batches of this round
    return time.process_time() - cpu0, time.thread_time() - thread0, errors


async def warm_up(
    ex: RequestExecutor, heap: StartupHeap, args: argparse.Namespace, sent: itertools.count
) -> None:
    """The first requests: lazy imports, the tokenizers' fast paths, the heap's second freeze."""
    await run_round(ex, heap, 300, args.concurrency, args.same_prompt, sent)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ex = build(Path(tmp))
        heap = StartupHeap()
        heap.freeze()  # as the ingress replica does at the end of its start
        sent = itertools.count()
        await warm_up(ex, heap, args, sent)
        rows = []
        for r in range(args.rounds):
            clear_token_cache()
            prof = cProfile.Profile() if args.profile and r == args.rounds - 1 else None
            if prof is not None:
                prof.enable()
            cpu, loop_cpu, errors = await run_round(
                ex, heap, args.requests, args.concurrency, args.same_prompt, sent
            )
            if prof is not None:
                prof.disable()
                prof.dump_stats(args.profile)
            per, per_loop = 1e6 * cpu / args.requests, 1e6 * loop_cpu / args.requests
            rows.append((per, per_loop))
            print(f"round {r + 1}: process {per:7.0f} us/request, event loop {per_loop:7.0f}"
                  f" us/request, errors {errors}", flush=True)  # fmt: skip
        ex.ledger.close()
    if len(rows) > 1:
        procs, loops = [p for p, _ in rows], [q for _, q in rows]
        print(f"median: process {statistics.median(procs):.0f} us (range {min(procs):.0f}-"
              f"{max(procs):.0f}), event loop {statistics.median(loops):.0f} us (range "
              f"{min(loops):.0f}-{max(loops):.0f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--same-prompt", action="store_true", help="one user message every time")
    ap.add_argument("--profile", help="write a cProfile of the last round here")
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    asyncio.run(main_async(args))
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
