"""What prediction is worth in cost at equal SLO attainment (simulator; issue #27).

#27 asks for ours with the predictor to beat ours with one constant prediction by >= 15 % on
cost at equal SLO attainment and quality. One run of each compares them at whatever
attainment each reaches, which is not equal. Here the planner's one cost knob, the global
`autoscaling.headroom` (spare capacity above predicted demand; pools that set their own keep
it), is swept, and each headroom runs ours, ours-constant and the oracle (true lengths and
tier) in one `simulate` call: three cost-vs-attainment curves. The cost of each curve at a
common attainment is read by linear interpolation between its sweep points (never
extrapolated), and the value of prediction there is 1 - ours / ours-constant.

    nice -n 10 python bench/prediction_frontier.py [--trace azure|mooncake] [--rate-scale 10]
        [--duration 1200] [--warmup 300] [--headrooms 0,0.1,0.25,0.5] [--level]
        [--source arena_hard --rate-scale 2 --duration 900 --work DIR]
        [--out docs/benchmark/prediction_frontier_azure10x]

`--source S`: the Azure arrivals carry real prompts of the shared source S with their real
answer lengths, and ours reads a predictor trained without S (bench/value_of_prediction.py's
trace and held-out artifact, built in `--work` when absent; limits as written). `--level`:
the planner's learned demand level on (`autoscaling.demand_level.enabled`) for all three.

Catalog and policy: deployments/gpu-example.yaml, policies/gpu-example.yaml, limits scaled
with the rate as bench/cost_benchmark.py scales them. JSON + PNG.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.paths import SHARED_DATA  # noqa: E402
from orchestrator.policy import load_policy, load_policy_text  # noqa: E402
from orchestrator.predict import Predictor  # noqa: E402
from orchestrator.simulate import load_traffic, rescale, simulate  # noqa: E402
from orchestrator.simulate.limits import scale_limits  # noqa: E402

TRACES = {
    "azure": SHARED_DATA / "azure-trace" / "AzureLLMInferenceTrace_conv.csv",
    "mooncake": SHARED_DATA / "mooncake-trace" / "synthetic_trace.jsonl",
}
CURVES = ("ours", "ours-constant", "oracle")


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def with_headroom(policy, catalog, headroom: float, level: bool = False):
    """`policy` with the global `autoscaling.headroom` set (per-pool values kept), and the
    learned demand level on when `level`."""
    spec = policy.spec.model_dump(mode="json", exclude_unset=True)
    spec.pop("catalog", None)
    auto = spec.setdefault("autoscaling", {})
    auto["headroom"] = headroom
    if level:
        auto.setdefault("demand_level", {})["enabled"] = True
    text = yaml.safe_dump(spec, sort_keys=False)
    return load_policy_text(
        text, f"{policy.source} (headroom {headroom:g})", catalog, resolve_secrets=False
    )


def cost_at(points: list[tuple[float, float]], attainment: float) -> float | None:
    """The cost of a curve at `attainment`: `points` are (attainment, cost) in sweep order
    (headroom rising); linear between two consecutive points that bracket it (the cheapest
    reading where the curve crosses it more than once); None outside the curve's range."""
    found = []
    for (a0, c0), (a1, c1) in zip(points, points[1:], strict=False):
        lo, hi = min(a0, a1), max(a0, a1)
        if lo <= attainment <= hi:
            found.append(c0 if a1 == a0 else c0 + (c1 - c0) * (attainment - a0) / (a1 - a0))
    return min(found) if found else None


def value_at(curves: dict[str, list[tuple[float, float]]], levels: list[float]) -> list[dict]:
    """At each attainment level both curves reach: the cost of each and the saving of the
    predictor (and of the truth) against the constant."""
    out = []
    for level in levels:
        costs = {name: cost_at(points, level) for name, points in curves.items()}
        if costs.get("ours") is None or costs.get("ours-constant") is None:
            continue
        row = {"attainment": level, **{f"cost_{k}": v for k, v in costs.items()}}
        row["saving_predictor"] = 1 - costs["ours"] / costs["ours-constant"]
        if costs.get("oracle") is not None:
            row["saving_truth"] = 1 - costs["oracle"] / costs["ours-constant"]
        out.append(row)
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in CURVES:
        pts = sorted((p["slo_attainment"] * 100, p["cost_usd"], p["headroom"])
                     for p in result["points"] if p["policy"] == name)  # fmt: skip
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        for a, c, h in pts:
            ax.annotate(f"{h:g}", (a, c), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("SLO attainment (%)")
    ax.set_ylabel("cost ($)")
    ax.set_title(f"{result['setup']['label']}: cost vs attainment (labels: headroom)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trace", choices=sorted(TRACES), default="azure")
    ap.add_argument("--rate-scale", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=1200.0)
    ap.add_argument("--warmup", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--headrooms", default="0,0.1,0.25,0.5")
    ap.add_argument("--level", action="store_true", help="the learned demand level on")
    ap.add_argument("--source", default=None, help="real prompts and answers of this source")
    ap.add_argument("--work", type=Path, default=None, help="--source's traces and artifacts")
    ap.add_argument("--out", default=None, help="path stem (default docs/benchmark/...)")
    args = ap.parse_args()
    headrooms = [float(h) for h in args.headrooms.split(",")]
    name = args.source or args.trace
    label = f"{name} x{args.rate_scale:g}" + (" (level)" if args.level else "")
    out = Path(args.out or ROOT / "docs" / "benchmark" / (
        f"prediction_frontier_{name}{args.rate_scale:g}x"))  # fmt: skip
    catalog = load_catalog(ROOT / "deployments" / "gpu-example.yaml")
    policy = load_policy(ROOT / "policies" / "gpu-example.yaml", catalog, resolve_secrets=False)
    new_predictor = None
    if args.source:
        import value_of_prediction as vp

        work = args.work or vp.WORK
        artifact = vp.held_out_artifact(args.source, work)
        base = load_traffic(vp.trace_for(args.source, args.rate_scale, args.duration,
                                         args.seed, work))  # fmt: skip

        def new_predictor():
            return Predictor(artifact, store=None)
    else:
        base = rescale(load_traffic(TRACES[args.trace], seed=args.seed),
                       rate_scale=args.rate_scale, duration_s=args.duration, seed=args.seed)  # fmt: skip
        catalog, policy = scale_limits(catalog, policy, args.rate_scale)
    say(f"{label}: {len(base)} requests, headrooms {headrooms}")
    t0 = time.time()
    points = []
    for i, headroom in enumerate(headrooms, 1):
        run = simulate(catalog, with_headroom(policy, catalog, headroom, args.level),
                       copy.deepcopy(base), policies=CURVES, seed=args.seed,
                       warmup_s=args.warmup,
                       predictor=new_predictor() if new_predictor else None)  # fmt: skip
        for name in CURVES:
            m = run.policies[name].metrics
            point = {"policy": name, "headroom": headroom,
                     **{k: m[k] for k in ("cost_usd", "slo_attainment", "quality", "rejected",
                                          "e2e_mean_ms")}}  # fmt: skip
            points.append(point)
            say(f"[{i}/{len(headrooms)}] headroom {headroom:g} {name}: ${m['cost_usd']:.2f}, "
                f"SLO {m['slo_attainment']:.2%}, quality {m['quality']:.2%}, "
                f"refused {m['rejected']}, e2e mean {m['e2e_mean_ms'] / 1000:.2f} s")  # fmt: skip
    curves = {n: [(p["slo_attainment"], p["cost_usd"]) for p in points if p["policy"] == n]
              for n in CURVES}  # fmt: skip
    reached = sorted({p["slo_attainment"] for p in points})
    result = {
        "setup": {
            "label": label,
            "trace": args.source or str(TRACES[args.trace].name),
            "demand_level": args.level,
            "rate_scale": args.rate_scale,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "seed": args.seed,
            "requests": len(base),
            "headrooms": headrooms,
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f} at the end",
            "wall_s": round(time.time() - t0, 1),
        },
        "points": points,
        "value_at_equal_attainment": value_at(curves, reached),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    for row in result["value_at_equal_attainment"]:
        truth = row.get("saving_truth")
        say(f"at {row['attainment']:.2%}: predictor saves {row['saving_predictor']:+.1%} "
            f"against the constant" + (f", truth {truth:+.1%}" if truth is not None else ""))  # fmt: skip
    print(json.dumps(result["value_at_equal_attainment"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
