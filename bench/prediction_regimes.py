"""Where knowing the answer's length pays (simulator ablations; issue #27).

Ours (the product's predictor), one constant prediction and the true lengths ("oracle"), on
`deployments/gpu-example.yaml` and `policies/gpu-example.yaml`, with the product's scheduler,
in regimes that isolate one mechanism each:
  --fixed-routing   every policy routes, admits and plans with the constant's decisions; only
                    the length the scheduler orders by (ingress key, vLLM priority, replica
                    work) differs: constant, the predictor's p50, or the true length;
  --static N=K,...  fixed replicas per profile (others 0), no planner: a queue that persists;
  --aging-s, --short-work-tokens, --no-engine-priority, --fcfs: the scheduler's knobs;
  --prompt-weight W: a prompt token's weight in the prefill-weighted work (`key.PROMPT_WEIGHT`,
                    shares, short lane, replica work, vLLM priority); --order-prompt-weight W:
                    its weight in the ingress order (`key.ORDER_PROMPT_WEIGHT`).
Reported per policy: mean e2e (served; matched: over the requests all three served; refusals
at 20 s), mean TTFT matched, cost, SLO attainment, refusals; each one's gain over the constant.
These knobs are set by patching the module attributes the product code reads (an ablation
harness, not a product path). One JSON line per run (append to `--out`).

    nice -n 5 python bench/prediction_regimes.py --static gpt-oss-20b-mxfp4=2,llama8b-fp8-ngram=2 \\
        --fixed-routing --aging-s 120 --tag s22-fixed-age120 [--trace mooncake --rate 4 --duration 0]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orchestrator.scheduling.key as key  # noqa: E402
from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.simulate import cluster as sim_cluster  # noqa: E402
from orchestrator.simulate import load_traffic, rescale, simulate  # noqa: E402
from orchestrator.simulate import run as sim_run  # noqa: E402
from orchestrator.simulate.cluster import Routed  # noqa: E402
from orchestrator.simulate.controllers import StaticController  # noqa: E402
from orchestrator.simulate.metrics import matched_latency  # noqa: E402

TRACES = {
    "azure": ROOT.parent / "shared" / "data" / "azure-trace" / "AzureLLMInferenceTrace_conv.csv",
    "mooncake": ROOT.parent / "shared" / "data" / "mooncake-trace" / "synthetic_trace.jsonl",
}
PENALTY_S = 20.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trace", choices=sorted(TRACES), default="azure")
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=900.0, help="0: whole trace")
    ap.add_argument("--static", default="", help="NAME=K,... fixed replicas (others 0)")
    ap.add_argument("--fixed-routing", action="store_true")
    ap.add_argument("--no-engine-priority", action="store_true")
    ap.add_argument("--fcfs", action="store_true")
    ap.add_argument("--short-work-tokens", type=int, default=None)
    ap.add_argument("--aging-s", type=float, default=None)
    ap.add_argument("--prompt-weight", type=float, default=None)
    ap.add_argument("--order-prompt-weight", type=float, default=None)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--out", default="/tmp/prediction_regimes.jsonl")
    args = ap.parse_args()
    catalog = load_catalog(ROOT / "deployments" / "gpu-example.yaml")
    policy = load_policy(ROOT / "policies" / "gpu-example.yaml", catalog, resolve_secrets=False)
    names = [p.name for p in catalog.profiles]
    if args.static:
        fixed = [0] * len(names)
        for kv in args.static.split(","):
            name, k = kv.split("=")
            fixed[names.index(name)] = int(k)
        sim_run.our_controller = lambda *a, **kw: StaticController(fixed)
        setups = sim_run._setups

        def fixed_setups(*a, **kw):
            out = setups(*a, **kw)
            for s in out.values():
                s.bounds[:] = [(k, k) for k in fixed]
            return out

        sim_run._setups = fixed_setups
    if args.prompt_weight is not None:
        key.PROMPT_WEIGHT = args.prompt_weight
    if args.order_prompt_weight is not None:
        key.ORDER_PROMPT_WEIGHT = args.order_prompt_weight
    resolve = sim_run.SchedulingSettings.of

    def settings_of(p):
        s = resolve(p)
        change = {}
        if args.fcfs:
            change["order"] = "fcfs"
        if args.short_work_tokens is not None:
            change["short_work_tokens"] = args.short_work_tokens
        if args.aging_s is not None:
            change["aging_s"] = args.aging_s
        return dataclasses.replace(s, **change)

    sim_run.SchedulingSettings.of = staticmethod(settings_of)
    if args.no_engine_priority:
        schedule = sim_cluster.Cluster._schedule

        def unprioritised(self, job, tenant, routed):
            schedule(self, job, tenant, routed)
            job.priority = 0

        sim_cluster.Cluster._schedule = unprioritised
    constant: list = []

    def constant_feed(prepared):
        if not constant:
            constant.append(sim_run.constant_prediction(prepared))
        return constant[0]

    if args.fixed_routing:
        decide = sim_run.pol.DecideRouter

        class FixedRouting:
            """Routes with the constant's inputs; the scheduler reads this policy's length."""

            def __init__(self, catalog, policy, prepared, *, oracle=False, demand_tokens=None):
                mine = "constant" if constant and prepared is constant[0] else "model"
                self.source = "truth" if oracle else mine
                self.model = prepared
                self.inner = decide(
                    catalog, policy, constant_feed(prepared), demand_tokens=demand_tokens
                )

            def route(self, req, cluster, now):
                res = self.inner.route(req, cluster, now)
                if isinstance(res, Routed) and self.source == "truth":
                    res.predicted = float(res.tokens)
                elif isinstance(res, Routed) and self.source == "model":
                    res.predicted = float(self.model.budgets[req.rid].p50_output_tokens)
                return res

        sim_run.pol.DecideRouter = FixedRouting
    base = rescale(
        load_traffic(TRACES[args.trace], seed=0),
        rate_scale=args.rate,
        duration_s=args.duration or None,
        seed=0,
    )
    t0 = time.time()
    run = simulate(
        catalog,
        policy,
        copy.deepcopy(base),
        policies=["ours", "oracle", "ours-constant"],
        seed=0,
        constant_feed=constant_feed,
    )
    matched = matched_latency({k: v.outcome for k, v in run.policies.items()}, PENALTY_S)
    rows = {}
    for name, r in run.policies.items():
        m = r.metrics
        rows[name] = {
            "e2e_mean_ms": m["e2e_mean_ms"],
            "cost_usd": m["cost_usd"],
            "slo_attainment": m["slo_attainment"],
            "rejected": m["rejected"],
            **matched[name],
        }
    const = rows["ours-constant"]
    gains = {
        name: {
            k: 1 - row[k] / const[k]
            for k in ("e2e_mean_ms", "e2e_mean_matched_ms", "e2e_mean_refusal_penalty_ms")
        }
        for name, row in rows.items()
    }
    found = {"tag": args.tag, "args": vars(args), "wall_s": time.time() - t0}
    found |= {"policies": rows, "gain_over_constant": gains}
    with open(args.out, "a") as f:
        f.write(json.dumps(found) + "\n")
    print(json.dumps({"tag": args.tag, "gain_over_constant": gains}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
