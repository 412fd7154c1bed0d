"""Benchmark: how fast ours' fleet follows a real speed other than the catalog's figures.

Replays the Azure conversation trace at `--rate-scale` (default 10x) on
deployments/gpu-example.yaml with policies/gpu-example.yaml under `ours` once per `--speeds`
value (every replica runs at X times its catalog throughput; router and planner keep the
figures), then compares each run's replicas and $/hour per controller tick with the 1.0x run:
a fleet X times as fast should need about 1/X of the replicas. Prints, per speed, the
replica-hours, SLO attainment, the first minute after which the fleet stays within
`--tolerance` of 1/X of the 1.0x fleet (replicas, 5-minute rolling mean), the planner's own
ideal fleet against the 1.0x run's, when its delivery factor learned the speed, and its
surplus (target above its ideal, `PolicyRun.planner`): how long each surplus lasted before
it was shed or needed again, against the policy's `autoscaling.scale_down_delay_s`. Draws
replicas and $/hour over time per speed (grey: warm-up, simulated but not measured).

`--planners now,before` runs each speed with the product's planner ("now": output sized as
the policy's `autoscaling.demand_sizing` says, p50 by default, the delivery factor scaling
prefill too, capped at 2.0) and with the planner of session 12 ("before": p50 sizing,
decode-only delivery capped at 1.5), or today's delivery with expected sizing ("expected"),
one table each
(each planner's ratios are against its own 1.0x run); the plot draws the first planner.

Usage: python bench/speed_shedding.py [--speeds 1.0,1.5,0.5] [--rate-scale 10]
       [--duration 1200] [--warmup 300] [--seed 0] [--planners now,before]
       [--plot docs/benchmark/speed_x10_replicas.png]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.paths import PROJECT_ROOT, SHARED_DATA  # noqa: E402
from orchestrator.planning.types import PlannerKnobs  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.simulate import load_traffic, rescale, simulate  # noqa: E402
from orchestrator.simulate.limits import scale_limits  # noqa: E402

TRACE = SHARED_DATA / "azure-trace" / "AzureLLMInferenceTrace_conv.csv"
WINDOW_S = 300.0  # rolling mean over the controller's ticks
# planner variants: (what ours' planner sizes output from, its internal knobs)
PLANNERS = {
    "now": (None, PlannerKnobs()),  # the policy's demand sizing (default p50)
    "before": ("p50", PlannerKnobs(delivery_covers_prefill=False, delivery_max=1.5)),
    "expected": ("expected", PlannerKnobs()),  # today's delivery factor, sized on the mean
}


def rolling(values: np.ndarray, ticks: int) -> np.ndarray:
    """Trailing mean over `ticks` samples (fewer at the start)."""
    c = np.cumsum(np.insert(values.astype(float), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - ticks, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def settled_after(ratio: np.ndarray, t: np.ndarray, tolerance: float) -> float | None:
    """First time from which `ratio` (fleet / expected fleet) stays within 1 +- tolerance."""
    bad = np.flatnonzero(np.abs(ratio - 1.0) > tolerance)
    if not len(bad):
        return float(t[0])
    return None if bad[-1] + 1 >= len(t) else float(t[bad[-1] + 1])


def surplus(decisions: list, interval_s: float) -> dict[str, float]:
    """The planner's own surplus: ticks where a profile's target exceeds its ideal (the
    cheapest mix for the forecast). Each stretch of such ticks ends either shed (the target
    came down) or needed again (the ideal rose back); returns their counts and longest
    lengths in seconds, and the surplus replica-hours."""
    out = {"shed": 0, "shed_max_s": 0.0, "needed": 0, "needed_max_s": 0.0, "open": 0, "h": 0.0}
    names = decisions[0].targets.keys() if decisions else ()
    for name in names:
        since = None
        for d in decisions:
            x = d.targets[name]
            over = x.target > x.ideal
            out["h"] += max(x.target - x.ideal, 0) * interval_s / 3600
            if over and since is None:
                since = (d.now_s, x.target)
            elif not over and since is not None:
                kind = "shed" if x.target < since[1] else "needed"
                out[kind] += 1
                out[f"{kind}_max_s"] = max(out[f"{kind}_max_s"], d.now_s - since[0])
                since = None
        out["open"] += since is not None
    return out


def learned_after(decisions: list, speed: float, knobs: PlannerKnobs) -> float | None:
    """First time the planner's delivery factor (replica-weighted over the running profiles)
    is within 5 % of the real speed, clipped to the planner's delivery bounds."""
    goal = min(max(speed, knobs.delivery_min), knobs.delivery_max)
    for d in decisions:
        running = [x for x in d.targets.values() if x.target > 0]
        weight = sum(x.target for x in running)
        if weight and abs(sum(x.delivery * x.target for x in running) / weight / goal - 1) <= 0.05:
            return d.now_s
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speeds", default="1.0,1.5,0.5", help="comma-separated; 1.0 is the base")
    ap.add_argument("--rate-scale", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=1200.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=float, default=300.0, help="seconds simulated, not measured")
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--plot", default=None, help="PNG of replicas over time per speed")
    ap.add_argument("--planners", default="now", help=f"comma-separated of {', '.join(PLANNERS)}")
    args = ap.parse_args()
    speeds = [float(s) for s in args.speeds.split(",")]
    if 1.0 not in speeds:
        ap.error("--speeds must include the base 1.0")
    planners = [p.strip() for p in args.planners.split(",") if p.strip()]
    if not planners or any(p not in PLANNERS for p in planners):
        ap.error(f"--planners: choose from {', '.join(PLANNERS)}")
    if not TRACE.is_file():
        print(f"trace absent: {TRACE}", file=sys.stderr)
        return 2
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    policy = load_policy(
        PROJECT_ROOT / "policies" / "gpu-example.yaml", catalog, resolve_secrets=False
    )
    requests = rescale(load_traffic(TRACE, seed=args.seed), rate_scale=args.rate_scale,
                       duration_s=args.duration, seed=args.seed)  # fmt: skip
    catalog, policy = scale_limits(catalog, policy, args.rate_scale)
    print(f"\n{len(requests)} requests (Azure conversation x{args.rate_scale:g}, first "
          f"{args.duration:g} s, seed {args.seed}); scale_down_delay_s "
          f"{policy.spec.autoscaling.scale_down_delay_s:g}; tolerance {args.tolerance:.0%} on a "
          f"{WINDOW_S:g} s rolling mean")  # fmt: skip
    drawn = None
    for planner in planners:
        runs = run_speeds(catalog, policy, requests, speeds, planner, args)
        table(runs, planner, args.tolerance)
        drawn = drawn or runs
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    if args.plot and drawn:
        n = min(len(r["t"]) for r in drawn.values())
        draw(drawn, n, args.plot, args.rate_scale, args.warmup)
    return 0


def run_speeds(catalog, policy, requests, speeds, planner: str, args) -> dict[float, dict]:
    """One `ours` run per speed with the named planner variant."""
    demand_tokens, knobs = PLANNERS[planner]
    price = {p.name: p.price_per_replica_hour_usd for p in catalog.profiles}
    runs: dict[float, dict] = {}
    for speed in speeds:
        t0, c0 = time.perf_counter(), time.process_time()
        res = simulate(catalog, policy, [copy.copy(r) for r in requests], policies=("ours",),
                       seed=args.seed, warmup_s=args.warmup, speed=speed,
                       demand_tokens=demand_tokens, planner_knobs=knobs)  # fmt: skip
        run = res.policies["ours"]
        tl = run.outcome.timeline
        reps = np.array([x[1] for x in tl], dtype=float)
        runs[speed] = {
            "t": np.array([x[0] for x in tl]),
            "per_profile": reps,
            "replicas": reps.sum(axis=1),
            "usd_h": reps @ np.array([price[n] for n in res.profiles]),
            "profiles": res.profiles,
            "metrics": run.metrics,
            "ideal": np.array([sum(x.ideal for x in d.targets.values()) for d in run.planner]),
            "ideal_t": np.array([d.now_s for d in run.planner]),
            "surplus": surplus(run.planner, policy.spec.autoscaling.interval_s),
            "learned_s": learned_after(run.planner, speed, knobs),
        }
        print(f"{planner} planner, speed {speed:g}: wall {time.perf_counter() - t0:.0f} s, "
              f"CPU {time.process_time() - c0:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
    return runs


def table(runs: dict[float, dict], planner: str, tolerance: float) -> None:
    """The markdown table of one planner variant, ratios against its own 1.0x run."""
    base = runs[1.0]
    n = min(len(r["t"]) for r in runs.values())
    t = base["t"][:n]
    ticks = max(1, round(WINDOW_S / float(np.median(np.diff(t)))))
    base_roll = rolling(base["replicas"][:n], ticks)
    sizing = PLANNERS[planner][0] or "the policy's autoscaling.demand_sizing"
    print(f"\nplanner: {planner} (output sized from {sizing})\n")
    print("| speed | $ | SLO att. | refused | replica-h | mean replicas | vs 1.0x (1/X) "
          "| within tolerance of 1/X x 1.0x from min | planner's ideal vs 1.0x "
          "| speed learned at min | surplus replica-h | surplus shed (longest) "
          "| surplus needed again (longest) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|")
    for speed, r in runs.items():
        m, sp = r["metrics"], r["surplus"]
        roll = rolling(r["replicas"][:n], ticks)
        since = settled_after(roll / np.maximum(base_roll / speed, 1e-9), t, tolerance)
        learned = r["learned_s"]
        print(
            f"| {speed:g}x | {m['cost_usd']:.2f} | {100 * m['slo_attainment']:.2f} % "
            f"| {m['rejected']} | {sum(m['replica_hours'].values()):.2f} "
            f"| {r['replicas'][:n].mean():.2f} "
            f"| {r['replicas'][:n].mean() / base['replicas'][:n].mean():.2f} ({1 / speed:.2f}) "
            f"| {'never' if since is None else f'{since / 60:.1f}'} "
            f"| {r['ideal'].mean() / base['ideal'].mean():.2f} "
            f"| {'never' if learned is None else f'{learned / 60:.1f}'} "
            f"| {sp['h']:.2f} | {sp['shed']} ({sp['shed_max_s']:.0f} s) "
            f"| {sp['needed']} ({sp['needed_max_s']:.0f} s) |"
        )


def draw(runs: dict[float, dict], n: int, path: str, rate_scale: float, warmup_s: float) -> None:
    """Replicas (all profiles) and $/hour per controller tick, one line per speed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    base = runs[1.0]
    for k, (speed, r) in enumerate(sorted(runs.items())):
        color = plt.cm.tab10(k)
        minutes = r["t"][:n] / 60.0
        a1.step(minutes, r["replicas"][:n], where="post", lw=1.2, color=color,
                label=f"{speed:g}x: replicas")  # fmt: skip
        a1.step(r["ideal_t"] / 60.0, r["ideal"], where="post", lw=0.7, ls="--", color=color,
                label=f"{speed:g}x: planner's ideal")  # fmt: skip
        a2.step(minutes, r["usd_h"][:n], where="post", lw=1.2, color=color, label=f"{speed:g}x")
        if speed != 1.0:
            a1.plot(minutes, base["replicas"][:n] / speed, lw=0.9, ls=":", color=color,
                    label=f"1.0x replicas / {speed:g}")  # fmt: skip
    a1.set_ylabel("replicas (all profiles)")
    a1.set_title(f"ours, Azure conversation x{rate_scale:g}: fleet per real speed")
    a2.set_ylabel("$/hour")
    a2.set_xlabel("minutes")
    for ax in (a1, a2):
        ax.axvspan(0, warmup_s / 60.0, color="0.92", lw=0)  # simulated, not measured
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
