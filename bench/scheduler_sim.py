"""What prediction is worth once the product schedules by it (simulator, one run).

On the Azure conversation trace at a load that queues (default x10 with the limits as
written, the first 15 minutes), with `deployments/gpu-example.yaml` and
`policies/gpu-example.yaml`, side by side:
  ours:          the product's predictor;
  ours-constant: one constant prediction (the median) for every request;
  oracle:        the true lengths (and needed tier): "truth";
each with the product's scheduler (ingress queue in key order, engines by priority, replicas by
predicted outstanding work) and without it (Serve's and vLLM's FIFO queues). Reported: mean
e2e, TTFT p95, cost, SLO attainment, quality, refusals; ours' gain over the constant and the
share of truth's gain it reaches (acceptance: >= 25 % lower mean e2e or >= 15 % lower cost at
equal SLO and quality; >= 60 % of truth's e2e gain).

Fairness: tenant `chat` at 10x the rate of tenant `internal`; `internal`'s TTFT p95 beside
`chat` against `internal` alone (acceptance: <= 1.5x), with and without the scheduler.

    nice -n 5 python bench/scheduler_sim.py [--rate 10 --duration 900] \
        [--out docs/benchmark/scheduler_sim]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.simulate import load_traffic, rescale, simulate  # noqa: E402

TRACE = ROOT.parent / "shared" / "data" / "azure-trace" / "AzureLLMInferenceTrace_conv.csv"
KEYS = ("e2e_mean_ms", "ttft_mean_ms", "cost_usd", "slo_attainment", "quality", "rejected")


def row(m: dict) -> dict:
    out = {k: m[k] for k in KEYS}
    out["ttft_p95_ms"] = m["ttft_ms"]["p95"]
    out["e2e_p95_ms"] = m["e2e_ms"]["p95"]
    return out


def gains(rows: dict) -> dict:
    const, ours, truth = rows["ours-constant"], rows["ours"], rows["oracle"]
    g_ours = 1 - ours["e2e_mean_ms"] / const["e2e_mean_ms"]
    g_truth = 1 - truth["e2e_mean_ms"] / const["e2e_mean_ms"]
    return {
        "ours_e2e_mean_gain_over_constant": g_ours,
        "truth_e2e_mean_gain_over_constant": g_truth,
        "ours_share_of_truth_gain": g_ours / g_truth if g_truth > 0 else None,
        "ours_cost_gain_over_constant": 1 - ours["cost_usd"] / const["cost_usd"],
        "slo_ours_minus_constant": ours["slo_attainment"] - const["slo_attainment"],
        "quality_ours_minus_constant": ours["quality"] - const["quality"],
    }


def light_ttft_p95(result, tenant: str) -> float:
    out = result.policies["ours"].outcome
    mask = np.array([r.tenant == tenant for r in result.requests]) & (out.profile >= 0)
    return float(np.nanpercentile(out.ttft_s[mask], 95) * 1000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trace", default=str(TRACE))
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=900.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmark" / "scheduler_sim"))
    args = ap.parse_args()
    catalog = load_catalog(ROOT / "deployments" / "gpu-example.yaml")
    policy = load_policy(ROOT / "policies" / "gpu-example.yaml", catalog, resolve_secrets=False)
    base = rescale(
        load_traffic(args.trace, seed=args.seed),
        rate_scale=args.rate,
        duration_s=args.duration,
        seed=args.seed,
    )
    result: dict = {
        "setup": {
            "trace": Path(args.trace).name,
            "rate_scale": args.rate,
            "duration_s": args.duration,
            "requests": len(base),
            "limits": "as written (fixed)",
            "machine": "2-core AMD EPYC, no GPU, shared with other work",
        }
    }
    t0 = time.time()
    for label, scheduler in (("scheduler", True), ("fifo", False)):
        run = simulate(
            catalog,
            policy,
            copy.deepcopy(base),
            policies=["ours", "oracle", "ours-constant"],
            seed=args.seed,
            scheduler=scheduler,
        )
        rows = {name: row(r.metrics) for name, r in run.policies.items()}
        result[label] = {"policies": rows, **gains(rows)}
        result.setdefault("prediction_error", run.prediction)
        print(label, json.dumps(result[label], indent=1), file=sys.stderr, flush=True)
    fairness = {}
    for label, scheduler in (("scheduler", True), ("fifo", False)):
        mixed = simulate(
            catalog,
            policy,
            copy.deepcopy(base),
            policies=["ours"],
            seed=args.seed,
            scheduler=scheduler,
            tenant_weights={"chat": 10.0, "internal": 1.0},
        )
        alone_reqs = [copy.copy(r) for r in mixed.requests if r.tenant == "internal"]
        for i, r in enumerate(alone_reqs):
            r.rid = i
            r.prediction = None
        alone = simulate(
            catalog, policy, alone_reqs, policies=["ours"], seed=args.seed, scheduler=scheduler
        )
        a, m = light_ttft_p95(alone, "internal"), light_ttft_p95(mixed, "internal")
        fairness[label] = {
            "internal_alone_ttft_p95_ms": a,
            "internal_beside_chat_ttft_p95_ms": m,
            "ratio": m / a,
            "chat_ttft_p95_ms": light_ttft_p95(mixed, "chat"),
        }
        print(label, fairness[label], file=sys.stderr, flush=True)
    result["fairness"] = fairness
    s = result["scheduler"]
    result["acceptance"] = {
        "e2e_25pct_or_cost_15pct_over_constant": s["ours_e2e_mean_gain_over_constant"] >= 0.25
        or (
            s["ours_cost_gain_over_constant"] >= 0.15
            and s["slo_ours_minus_constant"] >= -0.005
            and s["quality_ours_minus_constant"] >= -0.005
        ),
        "share_of_truth_gain_60pct": (s["ours_share_of_truth_gain"] or 0) >= 0.6,
        "fairness_1_5x": fairness["scheduler"]["ratio"] <= 1.5,
    }
    result["wall_s"] = time.time() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(json.dumps(result["acceptance"], indent=2))
    return 0


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["ours-constant", "ours", "oracle"]
    labels = ["constant", "predictor", "truth"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, title) in zip(
        axes,
        [
            ("e2e_mean_ms", "mean e2e (s)"),
            ("ttft_p95_ms", "TTFT p95 (s)"),
            ("cost_usd", "cost (USD)"),
        ],
        strict=True,
    ):
        x = np.arange(len(names))
        for k, (variant, color) in enumerate((("fifo", "tab:gray"), ("scheduler", "tab:blue"))):
            vals = [result[variant]["policies"][n][key] for n in names]
            if key != "cost_usd":
                vals = [v / 1000 for v in vals]
            ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, color=color, label=variant)
        ax.set_xticks(x, labels)
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    s = result["setup"]
    fig.suptitle(
        f"Azure conversation trace x{s['rate_scale']:g}, first {s['duration_s']:g} s "
        f"({s['requests']} requests): ours fed a constant, the predictor, the truth",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
