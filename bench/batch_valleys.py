"""Benchmark: a batch job beside interactive traffic, paced by ours or run at once (simulator).

Repeats a trace (../shared/data: the Azure conversation hour, or the Mooncake synthetic trace,
17 minutes of long-context Poisson arrivals) to fill `--hours` hours on
deployments/gpu-example.yaml with policies/gpu-example.yaml and adds a job of `--lines`
lines with a completion window of `--hours` hours, run as the policy's `batch` tenant
(`orchestrator.simulate.batch`). Prints what the job adds to the replica cost and when it
finishes under ours (the product's pacing: an even pace over the window, more in troughs)
and at once (`--at-once-concurrency` lines in flight from the start), with `--ablation` also
under the even pace alone and trough filling alone (over the deadline's floor), the goal check
(ours >= 30 % cheaper, in time), and writes JSON and a PNG (lines started over time) to
--report.

Usage: python bench/batch_valleys.py [--trace azure|mooncake] [--hours 6] [--lines 10000]
                                     [--ablation] [--report DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.paths import PROJECT_ROOT, SHARED_DATA  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.simulate import load_traffic  # noqa: E402
from orchestrator.simulate.batch import BatchResult, repeat, simulate_batch  # noqa: E402

TRACES = {
    "azure": SHARED_DATA / "azure-trace" / "AzureLLMInferenceTrace_conv.csv",
    "mooncake": SHARED_DATA / "mooncake-trace" / "synthetic_trace.jsonl",
}


def plot(result: BatchResult, hours: float, trace: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    styles = {"paced": ("tab:blue", "-"), "at_once": ("tab:red", "--"),
              "even_only": ("tab:green", ":"), "troughs_only": ("tab:orange", "-.")}  # fmt: skip
    for name, run in result.runs.items():
        starts = sorted(run.starts_s)
        color, style = styles[name]
        ax.plot([s / 3600 for s in starts], range(1, len(starts) + 1), style, color=color,
                label=f"{name}: +${run.added_cost_usd:.2f}, done at "
                f"{run.finish_s / 3600:.2f} h")  # fmt: skip
    ax.axvline(hours, color="black", linestyle=":", label="deadline")
    ax.set_xlabel("hours since the job was submitted")
    ax.set_ylabel("lines started")
    ax.set_title(f"A batch job beside the {trace} trace (simulated)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", choices=sorted(TRACES), default="azure")
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--at-once-concurrency", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ablation", action="store_true",
                    help="also the even pace alone and trough filling alone")  # fmt: skip
    ap.add_argument("--report", default=None)
    args = ap.parse_args()
    path = TRACES[args.trace]
    if not path.exists():
        print(f"needs {path} (the shared data)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    policy = load_policy(PROJECT_ROOT / "policies" / "gpu-example.yaml", catalog,
                         resolve_secrets=False)  # fmt: skip
    # one period of the trace (the Azure hour; Mooncake's whole span), repeated over the window
    rows = load_traffic(path, seed=args.seed)
    span = math.ceil(max(r.arrival_s for r in rows)) + 1.0
    period = 3600.0 if args.trace == "azure" else span
    once = [r for r in rows if r.arrival_s < period]
    trace = repeat(once, math.ceil(args.hours * 3600.0 / period), period)
    trace = [r for r in trace if r.arrival_s < args.hours * 3600.0]

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {message}", file=sys.stderr, flush=True)

    result = simulate_batch(catalog, policy, trace, lines=args.lines,
                            deadline_s=args.hours * 3600.0, seed=args.seed,
                            at_once_concurrency=args.at_once_concurrency,
                            ablation=args.ablation, progress=say)  # fmt: skip
    paced = result.runs["paced"]
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}; "
          f"trace {args.trace}: {len(once)} requests a {period:.0f} s period, "
          f"{len(trace)} over {args.hours} h")  # fmt: skip
    print(f"trace alone: ${result.base_cost_usd:.2f}, interactive TTFT p95 "
          f"{result.base_ttft_p95_ms:.0f} ms")  # fmt: skip
    for run in result.runs.values():
        print(f"{run.name:8s} adds ${run.added_cost_usd:7.2f}; done at {run.finish_s / 3600:5.2f} h;"
              f" lines served {run.lines_served}, refused {run.lines_rejected} "
              f"{run.rejected_by_reason}; interactive TTFT p95 {run.interactive_ttft_p95_ms:.0f} ms")  # fmt: skip
    saving = result.saving()
    ok = saving is not None and saving >= 0.30 and paced.met_deadline
    print(f"goal: ours adds >= 30 % less than at once and meets the deadline: "
          f"{'met' if ok else 'NOT met'} (saving {saving if saving is None else f'{saving:.1%}'})")  # fmt: skip
    print(f"wall {time.perf_counter() - t0:.0f} s")
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "batch_valleys.json").write_text(json.dumps(result.to_json(), indent=2))
        plot(result, args.hours, args.trace, out / "batch_valleys.png")
        print(f"wrote {out / 'batch_valleys.json'} and batch_valleys.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
