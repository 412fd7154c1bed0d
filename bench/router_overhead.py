"""Latency the routing stage adds to a request, measured on the ingress's own code path.

For each real prompt (shared data, else built-in ones) it times, side by side in one run:
  plain:  what the plain serving path does per request (parse + check the body, validate it
          into vLLM's request model, choose candidates);
  routed: the server's own functions, each timed: `parse_incoming` (caller targets, our checks,
          vLLM's request model validated ONCE, the predictor's text view), `predict` (token
          budget on every candidate; the server runs it in a worker thread, the hop is not
          included) and `plan`, the routing stage (tenant rules, admission, priced live views,
          `decide`, the decision applied to the validated request with `model_copy`, headers;
          the server runs it on the event loop).
Reported: each stage, the routed path and what it adds to the plain one (goal: the routing
stage, with the single validation pass, <= 1 ms p50), and `schedule`: what the scheduler adds
with nothing queued (goal <= 0.3 ms p50; its engine fields are also inside `plan`). Budgets read the SQLite ledger only for
tenants with budgets; the embedded default policy has none, as measured here.

    python bench/router_overhead.py [--n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY, SHARED_DATA  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.predict import Predictor  # noqa: E402
from orchestrator.replica_model import LiveState  # noqa: E402
from orchestrator.request import route_inputs  # noqa: E402
from orchestrator.request.candidates import candidates_for_model  # noqa: E402
from orchestrator.request.spec import caller_targets  # noqa: E402
from orchestrator.routing.views import with_live  # noqa: E402
from orchestrator.serving import openai_io  # noqa: E402
from orchestrator.serving.incoming import parse_incoming  # noqa: E402
from orchestrator.serving.plan import EnginePlan, PlanState, plan, predict  # noqa: E402

FALLBACK = [
    "What is the capital of France?",
    "Write a 500-word essay about the ocean.",
    "Explain recursion with an example in Python.",
    "Is 17 a prime number? Answer yes or no.",
]


def prompts(n: int) -> list[str]:
    files = sorted((SHARED_DATA / "alpaca-eval").glob("*.json"))
    if not files:
        return [FALLBACK[i % len(FALLBACK)] for i in range(n)]
    rows = json.loads(files[0].read_text())
    return [rows[i % len(rows)]["instruction"] for i in range(n)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def schedule_ms(policy, n: int) -> list[float]:
    """What the scheduler adds with nothing queued, in ms: vLLM's priority and the prediction
    for the engine request (`engine_fields`), the ingress queue's turn (a free slot: no wait)
    and the slot's release; timed inside one event loop, as the server runs them."""
    from orchestrator.scheduling import SchedulingSettings, Waiting
    from orchestrator.serving.ingress_queue import IngressQueue

    queue = IngressQueue(SchedulingSettings.of(policy), lambda profile: 16)

    async def run() -> list[float]:
        out = []
        for i in range(n + 20):
            t0 = time.perf_counter()
            SchedulingSettings.of(policy).engine_fields(
                "default", "standard", 40, 120.0, time.time()
            )
            ticket = await queue.turn("p", Waiting(str(i), "default", 40, 120.0))
            ticket.done(40, 100)
            out.append((time.perf_counter() - t0) * 1000)
        return out[20:]

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    catalog = load_catalog(DEFAULT_DEPLOYMENTS)
    policy = load_policy(DEFAULT_POLICY, catalog)
    predictor = Predictor.default()
    views = route_inputs.priced_views(catalog, policy)
    tenant = policy.resolve_tenant(None)

    def plain(raw: bytes) -> None:
        body = openai_io.parse_json_body(raw)
        openai_io.check_common_fields(body, "chat")
        candidates_for_model(body.get("model"), catalog)
        openai_io.validate_request(body, "chat")

    def routed(raw: bytes) -> tuple[float, float, float]:
        """(parse + validate, predict, plan) in ms."""
        t0 = time.perf_counter()
        body = openai_io.parse_json_body(raw)
        targets = caller_targets({}, body.pop("orchestrator", None))
        incoming = parse_incoming(body, "chat", tenant, targets, catalog)
        t1 = time.perf_counter()
        predicted = predict(incoming, catalog, predictor)
        t2 = time.perf_counter()
        live = {n: LiveState() for n in views}
        state = PlanState(
            policy=policy,
            catalog=catalog,
            views=with_live(views.values(), live),
            budget=route_inputs.BudgetState(None, None),
        )
        assert isinstance(plan(incoming, predicted, state, "bench"), EnginePlan)
        t3 = time.perf_counter()
        return (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000

    bodies = [
        json.dumps(
            {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": p}]}
        ).encode()
        for p in prompts(args.n)
    ]
    for raw in bodies[:20]:  # warm caches and lazy imports
        plain(raw)
        routed(raw)
    t_plain, t_parse, t_predict, t_plan, t_routed = [], [], [], [], []
    for raw in bodies:  # interleaved, so both see the same machine state
        t0 = time.perf_counter()
        plain(raw)
        t1 = time.perf_counter()
        parse_ms, predict_ms, plan_ms = routed(raw)
        t2 = time.perf_counter()
        t_plain.append((t1 - t0) * 1000)
        t_routed.append((t2 - t1) * 1000)
        t_parse.append(parse_ms)
        t_predict.append(predict_ms)
        t_plan.append(plan_ms)
    t_schedule = schedule_ms(policy, len(bodies))
    added = [r - p for p, r in zip(t_plain, t_routed, strict=True)]
    routing = [a + b for a, b in zip(t_parse, t_plan, strict=True)]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"python {platform.python_version()}; {len(bodies)} real prompts"
    )
    rows = (
        ("plain path", t_plain),
        ("parse+valid.", t_parse),
        ("predict", t_predict),
        ("plan (route)", t_plan),
        ("parse+plan", routing),
        ("schedule", t_schedule),
        ("routed path", t_routed),
        ("added", added),
    )
    for name, vals in rows:
        print(
            f"{name:12s} p50 {statistics.median(vals):6.3f} ms   p90 {pct(vals, 0.9):6.3f} ms   "
            f"p99 {pct(vals, 0.99):6.3f} ms"
        )


if __name__ == "__main__":
    main()
