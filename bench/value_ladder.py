"""What knowing the length is worth as the queue grows (simulator): one trace at a ladder of
loads and replica caps, ours / the constant / truth at each (`scheduler_sim.compare`, the
product's scheduler), with where the served requests waited (`scheduler_sim.queue_figures`).

Each rung is `RATE:CAPS` (CAPS as `scheduler_sim.py --max-replicas`, `;`-free; empty: the
planner as written). Writes <out>.json and <out>.png (gains over the constant on the served /
matched / penalised mean e2e, and the mean ingress wait, per rung).

    nice -n 5 python bench/value_ladder.py --trace mooncake \\
        --out docs/benchmark/scheduler_sim_s18_mooncake_ladder
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scheduler_sim import MOONCAKE, TRACE, bench_policy, compare, trace_shape  # noqa: E402

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.simulate import load_traffic, rescale  # noqa: E402

RUNGS = {
    "mooncake": (
        "4:gpt-oss-20b-mxfp4=3,llama8b-fp8-ngram=2,*=0",
        "4:gpt-oss-20b-mxfp4=2,llama8b-fp8-ngram=2,*=0",
        "6:gpt-oss-20b-mxfp4=2,llama8b-fp8-ngram=2,*=0",
        "3:gpt-oss-20b-mxfp4=1,llama8b-fp8-ngram=1,*=0",
        "4:gpt-oss-20b-mxfp4=1,llama8b-fp8-ngram=1,*=0",
        "8:gpt-oss-20b-mxfp4=2,llama8b-fp8-ngram=2,*=0",
    ),
}
PATHS = {"mooncake": (MOONCAKE, None), "azure-conv": (TRACE, 900.0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trace", choices=sorted(PATHS), default="mooncake")
    ap.add_argument("--rungs", default="", help="RATE:CAPS;... (default: the trace's ladder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/value_ladder")
    args = ap.parse_args()
    catalog = load_catalog(ROOT / "deployments" / "gpu-example.yaml")
    path, duration = PATHS[args.trace]
    rungs = args.rungs.split(";") if args.rungs else RUNGS[args.trace]
    loaded = load_traffic(path, seed=args.seed)
    result: dict = {"trace": args.trace, "rungs": []}
    t0 = time.time()
    for rung in rungs:
        rate, _, caps_text = rung.partition(":")
        caps = {k: int(v) for k, v in (kv.split("=") for kv in caps_text.split(",") if kv)}
        policy = bench_policy(ROOT / "policies" / "gpu-example.yaml", catalog, caps)
        base = rescale(loaded, rate_scale=float(rate), duration_s=duration, seed=args.seed)
        found = compare(catalog, policy, base, args.seed, variants=("scheduler",))
        result.setdefault("trace_shape", trace_shape(base, catalog))
        result["rungs"].append({"rate_scale": float(rate), "max_replicas": caps, **found})
    result["wall_s"] = time.time() - t0
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    return 0


def label(rung: dict) -> str:
    caps = rung["max_replicas"]
    pools = "+".join(str(v) for k, v in caps.items() if k != "*") or "planner"
    return f"x{rung['rate_scale']:g} {pools}"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rungs = result["rungs"]
    names = [label(r) for r in rungs]
    x = np.arange(len(rungs))
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    means = (("", "served"), ("_matched", "served by all"), ("_penalised", "refusals at 20 s"))
    for ax, (suffix, title) in zip(axes[:3], means, strict=True):
        for k, (who, color) in enumerate((("ours", "tab:blue"), ("truth", "tab:orange"))):
            vals = [
                100 * r["scheduler"][f"{who}_e2e_mean{suffix}_gain_over_constant"] for r in rungs
            ]
            ax.bar(x + (k - 0.5) * 0.4, vals, 0.4, color=color, label=who)
        ax.axhline(25, color="tab:red", lw=0.8, ls="--")
        ax.set_xticks(x, names, rotation=30, fontsize=8)
        ax.set_title(f"mean e2e gain over the constant, {title} (%)", fontsize=9)
    axes[0].legend(fontsize=8)
    ax = axes[3]
    for k, (who, color) in enumerate(
        (("ours-constant", "tab:gray"), ("ours", "tab:blue"), ("oracle", "tab:orange"))
    ):
        vals = [r["scheduler"]["policies"][who]["ingress_wait_mean_ms"] / 1000 for r in rungs]
        ax.bar(x + (k - 1) * 0.27, vals, 0.27, color=color, label=who)
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.set_title("mean ingress wait of the served (s)", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(f"{result['trace']}: the value of the length as the queue grows", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
