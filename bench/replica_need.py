"""Benchmark: ours' replicas per profile against the replicas the load needed, minute by minute.

Replays the Azure conversation trace (or the Mooncake synthetic trace) on
deployments/gpu-example.yaml with policies/gpu-example.yaml under ours and static-floor, side
by side in one run, and for every profile either used splits the replica-hours into what the
load needed and what was held beyond it:

- need, per minute: the served requests of that minute on that profile as replica time at
  the planner's own capacity (`planning.capacity.replica_capacity` at the profile's planning
  SLO for its mean request: prompt tokens / prefill rate + generated tokens / decode rate at
  the SLO), without headroom;
- clairvoyant bounds: a planner that knew each minute's need in advance and started
  replicas at no cost would hold ceil(need) replicas each minute (no headroom) or
  ceil(need x (1 + the policy's headroom)) (the policy's headroom); their cost over the
  measured minutes is the least any autoscaler on these pools can pay at the planner's
  capacity model (the first bound) or at the policy's headroom (the second);
- each policy's mean replicas per minute (billed ones: starting and draining included).

All columns cover the same whole measured minutes (after the warm-up, up to the last whole
minute of arrivals); the run's billed cost and SLO attainment are printed beside them.
Prints a markdown table per profile and the totals in $, and with `--png F` draws need,
bounds and replicas over time per profile. Simulated figures (deterministic per seed).

Usage: python bench/replica_need.py [--trace azure|mooncake] [--rate-scale X] [--warmup S]
       [--duration S] [--png F] [--json F]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.paths import PROJECT_ROOT, SHARED_DATA  # noqa: E402
from orchestrator.planning.capacity import planning_slo, replica_capacity  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.simulate import load_traffic, rescale, simulate  # noqa: E402
from orchestrator.simulate.limits import scale_limits  # noqa: E402

TRACES = {
    "azure": SHARED_DATA / "azure-trace" / "AzureLLMInferenceTrace_conv.csv",
    "mooncake": SHARED_DATA / "mooncake-trace" / "synthetic_trace.jsonl",
}
POLICIES = ("ours", "static-floor")
MINUTE_S = 60.0


def minute_need(run, requests, index: int, profile, policy, minutes: int) -> np.ndarray:
    """Replicas of `profile` each minute's served requests needed at the planner's capacity."""
    out = run.outcome
    served = np.flatnonzero(out.profile == index)
    if served.size == 0:
        return np.zeros(minutes)
    prompt = np.array([requests[i].prompt_tokens for i in served], dtype=float)
    made = out.tokens[served].astype(float)
    cap = replica_capacity(
        profile, planning_slo(policy, profile.name), prompt.mean(), max(1, round(made.mean()))
    )
    minute = np.array([int(requests[i].arrival_s // MINUTE_S) for i in served])
    keep = minute < minutes
    work = prompt / cap.prefill_tps + made / cap.output_tps
    return np.bincount(minute[keep], weights=work[keep], minlength=minutes) / MINUTE_S


def minute_replicas(run, index: int, minutes: int) -> np.ndarray:
    """Mean billed replicas of pool `index` per minute (the cluster's timeline)."""
    sums, counts = np.zeros(minutes), np.zeros(minutes)
    for t, replicas, _ in run.outcome.timeline:
        m = int(t // MINUTE_S)
        if m < minutes:
            sums[m] += replicas[index]
            counts[m] += 1
    return np.divide(sums, counts, out=np.zeros(minutes), where=counts > 0)


def decompose(result, requests, catalog, policy, first: int, minutes: int) -> list[dict]:
    """One row per profile some policy used: need, bounds and replicas over the measured
    minutes [first, minutes)."""
    rows = []
    for i, name in enumerate(result.profiles):
        runs = {n: result.policies[n] for n in POLICIES if n in result.policies}
        if all(r.outcome.replica_hours[i] <= 0 for r in runs.values()):
            continue
        profile = catalog.profile(name)
        headroom = policy.scaling[name].headroom
        need = minute_need(runs["ours"], requests, i, profile, policy, minutes)[first:]
        reps = {n: minute_replicas(r, i, minutes)[first:] for n, r in runs.items()}
        price = profile.price_per_replica_hour_usd
        bare = np.ceil(need - 1e-9)
        spare = np.ceil(need * (1.0 + headroom) - 1e-9)
        rows.append({
            "profile": name,
            "price_per_hour": price,
            "headroom": headroom,
            "need_mean": float(need.mean()),
            "need_peak": float(need.max()),
            "clairvoyant": float(bare.mean()),
            "clairvoyant_headroom": float(spare.mean()),
            "replicas": {n: float(r.mean()) for n, r in reps.items()},
            "usd": {
                "clairvoyant": float(bare.sum() / 60 * price),
                "clairvoyant_headroom": float(spare.sum() / 60 * price),
                **{n: float(r.sum() / 60 * price) for n, r in reps.items()},
            },
            "series": {"need": need.tolist(), **{n: r.tolist() for n, r in reps.items()}},
        })  # fmt: skip
    return rows


def table(rows: list[dict], result) -> str:
    head = (
        "| profile | need mean / peak | clairvoyant ceil(need) | ceil(need x (1 + headroom)) "
        + "".join(f"| {n} replicas " for n in POLICIES)
        + "|\n|---|---|---:|---:|"
        + "---:|" * len(POLICIES)
        + "\n"
    )
    lines = [
        f"| {r['profile']} | {r['need_mean']:.2f} / {r['need_peak']:.2f} | {r['clairvoyant']:.2f} "
        f"| {r['clairvoyant_headroom']:.2f} (+{r['headroom']:.0%}) "
        + "".join(f"| {r['replicas'].get(n, 0.0):.2f} " for n in POLICIES)
        + "|"
        for r in rows
    ]
    total = {k: sum(r["usd"].get(k, 0.0) for r in rows) for k in ("clairvoyant",
             "clairvoyant_headroom", *POLICIES)}  # fmt: skip
    m = {n: result.policies[n].metrics for n in POLICIES}
    lines.append(
        f"| **$ over these minutes** | | **{total['clairvoyant']:.2f}** "
        f"| **{total['clairvoyant_headroom']:.2f}** "
        + "".join(f"| **{total[n]:.2f}** " for n in POLICIES)
        + "|"
    )
    lines.append(
        "| billed $, SLO attainment (the run) | | | "
        + "".join(f"| ${m[n]['cost_usd']:.2f}, {m[n]['slo_attainment']:.2%} " for n in POLICIES)
        + "|"
    )
    best = total["static-floor"] / total["clairvoyant"] if total["clairvoyant"] else float("nan")
    return (
        head
        + "\n".join(lines)
        + f"\n\nstatic-floor / clairvoyant (no headroom) = {best:.2f}x: the most any autoscaler "
        "on these pools saves at the planner's capacity model\n"
    )


def draw(rows: list[dict], first: int, title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 3.2 * len(rows)), squeeze=False)
    styles = {"ours": ("tab:blue", "-"), "static-floor": ("tab:gray", "--")}
    for ax, r in zip(axes[:, 0], rows, strict=True):
        x = np.arange(first, first + len(r["series"]["need"]))
        need = np.array(r["series"]["need"])
        ax.plot(x, need, color="black", lw=1.2, label="need (planner's capacity, no headroom)")
        ax.step(x, np.ceil(need - 1e-9), where="mid", color="tab:orange", lw=1, ls=":",
                label=f"clairvoyant ceil(need) (mean {r['clairvoyant']:.2f})")  # fmt: skip
        if r["headroom"] > 0:
            ax.step(x, np.ceil(need * (1 + r["headroom"]) - 1e-9), where="mid", lw=1,
                    color="tab:green", label=f"clairvoyant ceil(need x {1 + r['headroom']:.2f}) "
                    f"(mean {r['clairvoyant_headroom']:.2f})")  # fmt: skip
        for name in POLICIES:
            if name in r["series"]:
                color, ls = styles[name]
                ax.plot(x, r["series"][name], color=color, ls=ls, lw=1.4,
                        label=f"{name} replicas (mean {r['replicas'][name]:.2f})")  # fmt: skip
        ax.set_title(f"{r['profile']} (${r['price_per_hour']:.2f}/h)", fontsize=10)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("minute")
        ax.set_ylabel("replicas")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", choices=sorted(TRACES), default="azure")
    ap.add_argument("--rate-scale", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=300.0, help="seconds simulated, not measured")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--png", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    c0, t0 = time.process_time(), time.perf_counter()
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    policy = load_policy(
        PROJECT_ROOT / "policies" / "gpu-example.yaml", catalog, resolve_secrets=False
    )
    requests = rescale(load_traffic(TRACES[args.trace], seed=args.seed),
                       rate_scale=args.rate_scale, duration_s=args.duration,
                       seed=args.seed)  # fmt: skip
    catalog, policy = scale_limits(catalog, policy, args.rate_scale)
    result = simulate(catalog, policy, requests, policies=POLICIES, seed=args.seed,
                      warmup_s=args.warmup)  # fmt: skip
    last = max(r.arrival_s for r in requests)
    minutes = int(last // MINUTE_S)  # whole minutes only (the last one is cut)
    first = math.ceil(args.warmup / MINUTE_S)
    rows = decompose(result, requests, catalog, policy, first, minutes)
    title = (
        f"{args.trace} x{args.rate_scale:g}: replicas against the need, "
        f"minutes {first}-{minutes - 1}"
    )
    print(f"## {title}\n\n{table(rows, result)}")
    print(
        f"{len(requests)} requests; CPU {time.process_time() - c0:.1f} s; wall "
        f"{time.perf_counter() - t0:.1f} s; machine: {platform.platform()}, {os.cpu_count()} "
        f"CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    if args.png:
        draw(rows, first, title, args.png)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
