"""Benchmark: where ours spends more (or less) than static at the policy's floors, term by term.

Replays a trace (Azure conversation at a rate scale, or the Mooncake synthetic trace) on
deployments/gpu-example.yaml with policies/gpu-example.yaml under ours and static-floor, side
by side in one run, and splits ours' cost minus static-floor's by profile into the terms of
`orchestrator.simulate.terms` (idle always-on minimum, start-up of unused profiles, profiles
static-floor does not use, the pools both use, profiles only static-floor uses). With
`--variants`, ours runs again under the inputs the example shipped with before this change,
one at a time, for the ablation: `h100-minimum` (the H100 Llama-8B kept warm by a policy
minimum of 1) and `warm-start` (every profile starting with a replica, as when the catalog's
`replicas.start` decided). Prints a markdown table per run (cost, SLO attainment, quality,
the terms) and, with `--png F`, draws the terms as stacked bars.

Usage: python bench/savings_terms.py [--run azure:1] [--run azure:10] [--run mooncake:1]
       [--variants] [--warmup S] [--duration S] [--png F] [--json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.paths import PROJECT_ROOT, SHARED_DATA  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.simulate import load_traffic, rescale, simulate  # noqa: E402
from orchestrator.simulate.limits import scale_limits  # noqa: E402
from orchestrator.simulate.terms import TERMS, RunUse, cost_terms, term_totals  # noqa: E402

TRACES = {
    "azure": SHARED_DATA / "azure-trace" / "AzureLLMInferenceTrace_conv.csv",
    "mooncake": SHARED_DATA / "mooncake-trace" / "synthetic_trace.jsonl",
}
VARIANTS = ("h100-minimum", "warm-start")


def variant(policy, name: str):
    """The policy with one input as the example shipped it before (see the docstring)."""
    scaling = dict(policy.scaling)
    if name == "h100-minimum":
        b = scaling["llama8b-bf16-eagle3"]
        scaling[b.profile] = dataclasses.replace(b, min_replicas=1, initial_replicas=1,
                                                 scale_to_zero=False)  # fmt: skip
    elif name == "warm-start":
        for key, b in scaling.items():
            if b.max_replicas > 0:
                scaling[key] = dataclasses.replace(b, initial_replicas=max(b.initial_replicas, 1))
    return dataclasses.replace(policy, scaling=scaling)


def one_run(trace: str, scale: float, args) -> list[dict]:
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    policy = load_policy(
        PROJECT_ROOT / "policies" / "gpu-example.yaml", catalog, resolve_secrets=False
    )
    requests = rescale(
        load_traffic(TRACES[trace], seed=args.seed),
        rate_scale=scale,
        duration_s=args.duration,
        seed=args.seed,
    )
    catalog, policy = scale_limits(catalog, policy, scale)
    warmup = args.warmup if scale > 1 else 0.0
    runs = [("ours", policy, ("ours", "static-floor"))]
    if args.variants:
        runs += [(f"ours, {v}", variant(policy, v), ("ours",)) for v in VARIANTS]
    prices = {p.name: p.price_per_replica_hour_usd for p in catalog.profiles}
    rows, base = [], None
    for label, pol, names in runs:
        result = simulate(catalog, pol, requests, policies=names, seed=args.seed, warmup_s=warmup)
        if base is None:
            base = result.policies["static-floor"].metrics
            hours = (base["simulated_s"] - warmup) / 3600.0
            rows.append(_row(f"{trace} x{scale:g}", "static-floor", base, None))
        m = result.policies["ours"].metrics
        mins = {n: b.min_replicas for n, b in pol.scaling.items()}
        terms = cost_terms(RunUse.of(m), RunUse.of(base), prices, mins, hours)
        rows.append(_row(f"{trace} x{scale:g}", label, m, terms))
    return rows


def _row(run: str, label: str, m: dict, terms: dict | None) -> dict:
    return {
        "run": run,
        "policy": label,
        "cost_usd": m["cost_usd"],
        "slo_attainment": m["slo_attainment"],
        "quality": m["quality"],
        "rejected": m["rejected"],
        "replica_hours": m["replica_hours"],
        "terms": terms,
        "term_totals": term_totals(terms) if terms is not None else None,
    }


def table(rows: list[dict]) -> str:
    head = (
        "| run | policy | $ total | SLO att. | quality | rejected | "
        + " | ".join(TERMS)
        + " |\n|---|---|---:|---:|---:|---:|"
        + "---:|" * len(TERMS)
        + "\n"
    )
    body = []
    for r in rows:
        t = r["term_totals"]
        cells = [f"{t[k]:+.2f}" for k in TERMS] if t else ["-"] * len(TERMS)
        body.append(
            f"| {r['run']} | {r['policy']} | {r['cost_usd']:.2f} | {r['slo_attainment']:.2%} "
            f"| {r['quality']:.2%} | {r['rejected']} | " + " | ".join(cells) + " |"
        )
    return head + "\n".join(body) + "\n"


def draw(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['run']}\n{r['policy']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(rows)) + 2, 5))
    x = range(len(rows))
    floor = [next(b for b in rows if b["run"] == r["run"])["cost_usd"] for r in rows]
    ax.bar(x, floor, color="0.75", label="static-floor's cost")
    up = list(floor)
    down = list(floor)
    colours = ("tab:red", "tab:orange", "tab:purple", "tab:blue", "tab:green")
    for term, colour in zip(TERMS, colours, strict=True):
        vals = [(r["term_totals"] or {}).get(term, 0.0) for r in rows]
        bottoms = [up[i] if v >= 0 else down[i] + v for i, v in enumerate(vals)]
        ax.bar(x, [abs(v) for v in vals], bottom=bottoms, color=colour, label=term,
               hatch="" if all(v >= 0 for v in vals) else "//")  # fmt: skip
        for i, v in enumerate(vals):
            if v >= 0:
                up[i] += v
            else:
                down[i] += v
    for i, r in enumerate(rows):
        ax.plot([i - 0.4, i + 0.4], [r["cost_usd"]] * 2, color="black", lw=2)
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set_ylabel("USD (black line: the policy's cost)")
    ax.set_ylim(bottom=0)
    ax.set_title("ours vs static-floor: cost by term (hatched: negative)", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", default=None, help="TRACE:RATE_SCALE")
    ap.add_argument("--variants", action="store_true", help="also ours under the old inputs")
    ap.add_argument("--warmup", type=float, default=300.0, help="for rate scales > 1")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--png", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    c0, t0 = time.process_time(), time.perf_counter()
    rows: list[dict] = []
    for spec in args.run or ["azure:1"]:
        trace, _, scale = spec.partition(":")
        if not TRACES[trace].is_file():
            print(f"trace absent: {TRACES[trace]}", file=sys.stderr)
            return 2
        rows += one_run(trace, float(scale or 1), args)
        print(f"{spec} done: CPU {time.process_time() - c0:.0f} s", file=sys.stderr, flush=True)
    print(table(rows))
    print(
        f"CPU {time.process_time() - c0:.1f} s, wall {time.perf_counter() - t0:.1f} s; machine: "
        f"{platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if args.png:
        draw(rows, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
