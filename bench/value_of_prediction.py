"""What prediction is worth when the text carries signal (simulator; issue #27).

The Azure and Mooncake traces carry token counts, no text, so their replays attach prompts
matched by length only and the predictor reads text that says nothing of the answers (Spearman
0.19 / 0.13). Here each arrival of the Azure conversation trace (rate-scaled, first
`--duration` s) gets a real prompt of one shared source with its real answer's length
(`orchestrator.simulate.answered`), and ours reads a predictor trained WITHOUT that source
(`orchestrator predictor train --leave-out SOURCE`, trained here when absent). Per source, with
`deployments/gpu-example.yaml` and `policies/gpu-example.yaml` (limits as written), side by
side in one process:
  ours:          the product's predictor (the held-out artifact, learning online);
  ours-constant: one constant prediction (the median) for every request;
  oracle:        the true lengths (and needed tier), i.e. `--prediction truth`;
each with the product's scheduler and without it (FIFO ablation), through the machinery of
bench/scheduler_sim.py. Reported: mean / p95 e2e, mean / p95 TTFT, cost, SLO attainment,
quality, refused; the value of prediction (ours vs the constant) and its share of truth's gain,
against #27's acceptance (>= 25 % lower mean e2e or >= 15 % lower cost at equal SLO and
quality; >= 60 % of truth's e2e gain). `--sizing expected|p50` sets what the planner sizes
output from (default: the policy's `autoscaling.demand_sizing`); `--before` repeats the three
with p50 sizing, with the scheduler, in the same process (session 13's table:
`--sizing expected --before`). `--sizings p50,expected,p50+level,expected+level` instead runs
the three with the scheduler once per planner sizing (the policy's `demand_sizing`, with the
learned demand level on for `+level`, off otherwise; bench/cost_benchmark.py `sized_policy`),
side by side, and writes `<out>_sizings.json`. JSON + PNG.

    nice -n 5 python bench/value_of_prediction.py [--sources arena_hard,alpaca_eval] \\
        [--rate arena_hard=2,alpaca_eval=5 | --rate X] [--duration 900] [--no-fifo] \\
        [--decompose] [--sizing expected|p50] [--before] [--speed 1.0] [--work DIR] \\
        [--out docs/benchmark/value_of_prediction]

The same run from the command line, per source (trace and artifact paths are printed):
    orchestrator simulate --trace TRACE.jsonl --predictor-artifact DIR \\
        --deployments deployments/gpu-example.yaml --policy policies/gpu-example.yaml \\
        --baselines none [--no-scheduler]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cost_benchmark import sized_policy  # noqa: E402
from scheduler_sim import (  # noqa: E402
    PLOT_METRICS,
    TRACE,
    WARMUP_S,
    acceptance,
    compare,
    plot_compare,
    row,
)

from orchestrator import paths  # noqa: E402
from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.predict import Predictor  # noqa: E402
from orchestrator.simulate import load_traffic, simulate  # noqa: E402
from orchestrator.simulate.answered import (  # noqa: E402
    answered_prompts,
    azure_arrivals,
    build_trace,
    write_jsonl,
)
from orchestrator.simulate.policies import Prepared  # noqa: E402
from orchestrator.simulate.run import constant_prediction  # noqa: E402

WORK = paths.cache_dir() / "value_of_prediction"


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def held_out_artifact(source: str, folder: Path) -> Path:
    """The predictor trained on every shared source but `source` (trained when absent)."""
    out = folder / f"no-{source}"
    if not (out / "meta.json").is_file():
        from orchestrator.predict.offline.table import cached_table
        from orchestrator.predict.offline.train import TrainConfig, train

        say(f"training a predictor without {source} into {out} (a few minutes)")
        result = train(
            TrainConfig(),
            table=cached_table().without_sources([source]),
            evaluate_heldout=False,
            extra_meta={"left_out_sources": [source]},
            progress=lambda line: say(f"  {line}"),
        )
        result.artifact.save(out)
    trained_on = json.loads((out / "meta.json").read_text())["training"]["train_rows_by_source"]
    if source in trained_on:  # honesty: never simulate a source with a model trained on it
        raise SystemExit(f"{out} was trained on {source}: {sorted(trained_on)}")
    return out


def trace_for(source: str, rate: float, duration: float, seed: int, folder: Path) -> Path:
    """The source's prompts on the Azure arrivals at `rate` x (built when absent)."""
    path = folder / f"trace-{source}-x{rate:g}-{duration:g}s-seed{seed}.jsonl"
    if not path.is_file():
        prompts = answered_prompts(source)
        arrivals = azure_arrivals(TRACE, rate_scale=rate, duration_s=duration, seed=seed)
        write_jsonl(build_trace(prompts, arrivals, seed=seed), path)
        say(f"{source}: {len(arrivals)} arrivals, {len(prompts)} prompts -> {path}")
    return path


def feeds(base: list) -> dict:
    """Ablations of what is fed (ours-constant's place, `simulate(constant_feed=...)`): which
    part of a prediction pays. The class and reasoning fields route (SLO limits per class);
    the lengths order the queues, choose replicas and size the planner."""
    true = [r.output_tokens for r in base]
    mean = round(float(np.mean(true)))

    def mixed(update):
        def feed(prepared: Prepared) -> Prepared:
            const = constant_prediction(prepared).budgets[0]
            return Prepared(
                [b.model_copy(update=update(b, const, i)) for i, b in enumerate(prepared.budgets)]
            )

        return feed

    def constant_class(c) -> dict:
        return {
            "query_class": c.query_class,
            "reasoning_probability": c.reasoning_probability,
            "reasoning_tokens": c.reasoning_tokens,
        }

    return {
        "predicted lengths, constant class": mixed(lambda b, c, i: constant_class(c)),
        "constant lengths, predicted class": mixed(
            lambda b, c, i: {
                "p50_output_tokens": c.p50_output_tokens,
                "p90_output_tokens": c.p90_output_tokens,
            }  # fmt: skip
        ),
        "true lengths, constant class": mixed(
            lambda b, c, i: {
                **constant_class(c),
                "p50_output_tokens": true[i],
                "p90_output_tokens": true[i],
            }  # fmt: skip
        ),
        "one constant at the true mean length": mixed(
            lambda b, c, i: {
                **constant_class(c),
                "p50_output_tokens": mean,
                "p90_output_tokens": mean,
            }  # fmt: skip
        ),
    }


def decompose(
    catalog, policy, base: list, seed: int, artifact: Path, const_ms: float, speed: float
) -> dict:
    """Each ablation of `feeds` with the scheduler: its row and its mean e2e gain over the
    median constant."""
    out = {}
    for name, feed in feeds(base).items():
        run = simulate(
            catalog,
            policy,
            [copy.copy(r) for r in base],
            policies=["ours-constant"],
            seed=seed,
            predictor=Predictor(artifact, store=None),
            constant_feed=feed,
            speed=speed,
        )
        found = row(run.policies["ours-constant"].metrics)
        found["e2e_mean_gain_over_constant"] = 1 - found["e2e_mean_ms"] / const_ms
        out[name] = found
        say(f"  ablation {name}: {found['e2e_mean_gain_over_constant']:+.1%} mean e2e, "
            f"${found['cost_usd']:.2f}, SLO {found['slo_attainment']:.1%}")  # fmt: skip
    return out


def rates(text: str, sources: list[str]) -> dict[str, float]:
    if "=" not in text:
        return dict.fromkeys(sources, float(text))
    pairs = {k.strip(): float(v) for k, _, v in (p.partition("=") for p in text.split(","))}
    missing = sorted(set(sources) - set(pairs))
    if missing:
        raise SystemExit(f"--rate: no rate for {', '.join(missing)}")
    return pairs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sources", default="arena_hard,alpaca_eval")
    ap.add_argument(
        "--rate",
        default="arena_hard=2,alpaca_eval=5",
        help="X, or SOURCE=X,... (times the Azure rate; the defaults put about the decode "
        "tokens/s of the Azure trace at x10 on the cluster: o3-mini answers ~1,300 tokens, "
        "gpt-4-1106's ~460, the trace's ~250)",
    )
    ap.add_argument("--duration", type=float, default=900.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fifo", action="store_true", help="only the runs with the scheduler")
    ap.add_argument(
        "--decompose",
        action="store_true",
        help="also the ablations of what is fed: predicted lengths with one class, one "
        "length with predicted classes, the true lengths with one class, one constant at "
        "the true mean length (with the scheduler)",
    )
    ap.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replicas' real speed against the catalog's figures (0.5: a cluster that stays "
        "saturated, the planner sizing it by the figures)",
    )
    ap.add_argument(
        "--sizing",
        choices=("expected", "p50"),
        default=None,
        help="what the planner sizes output from in the main runs (default: the policy's "
        "autoscaling.demand_sizing)",
    )
    ap.add_argument(
        "--before",
        action="store_true",
        help="also ours, the constant and the truth with the planner sizing output from p50 "
        "(the ablation of expected tokens; with the scheduler)",
    )
    ap.add_argument(
        "--sizings", default=None, help="e.g. p50,expected,p50+level,expected+level (see doc)"
    )
    ap.add_argument("--work", type=Path, default=WORK, help="traces and held-out artifacts")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmark" / "value_of_prediction"))
    args = ap.parse_args()
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    rate_of = rates(args.rate, sources)
    catalog = load_catalog(ROOT / "deployments" / "gpu-example.yaml")
    policy = load_policy(ROOT / "policies" / "gpu-example.yaml", catalog, resolve_secrets=False)
    variants = ("scheduler",) if args.no_fifo else ("scheduler", "fifo")
    result: dict = {
        "setup": {
            "machine": f"2-core AMD EPYC, no GPU, shared with other work ({platform.python_version()})",
            "catalog": "deployments/gpu-example.yaml",
            "policy": "policies/gpu-example.yaml (limits as written)",
            "arrivals": TRACE.name,
        },
        "sources": {},
    }
    t0 = time.time()
    for source in sources:
        artifact = held_out_artifact(source, args.work)
        path = trace_for(source, rate_of[source], args.duration, args.seed, args.work)
        base = load_traffic(path)
        out_tokens = np.array([r.output_tokens for r in base])
        say(
            f"{source} x{rate_of[source]:g}: {len(base)} requests, answers mean "
            f"{out_tokens.mean():.0f} / median {np.median(out_tokens):.0f} tokens; "
            f"predictor {artifact}"
        )
        say(
            f"  = orchestrator simulate --trace {path} --predictor-artifact {artifact} "
            "--deployments deployments/gpu-example.yaml --policy policies/gpu-example.yaml "
            "--baselines none"
        )
        started = time.time()

        def run(kinds, artifact=artifact, base=base, policy=policy, **extra) -> dict:
            out = compare(
                catalog,
                policy,
                base,
                args.seed,
                new_predictor=lambda: Predictor(artifact, store=None),
                variants=kinds,
                split_s=WARMUP_S,
                speed=args.speed,
                **extra,
            )
            for variant in kinds:
                out[variant]["window_gains"] = window_gains(out[variant]["windows"])
            return out

        if args.sizings:
            result["sources"][source] = {
                v: run(("scheduler",), policy=sized_policy(policy, v))["scheduler"]
                for v in args.sizings.split(",")
            }
            say(f"{source}: " + sizings_line(result["sources"][source]))
            continue
        found = run(variants, demand_tokens=args.sizing)
        found["setup"] = {
            "source": source,
            "rate_scale": rate_of[source],
            "duration_s": args.duration,
            "requests": len(base),
            "answer_tokens_mean": float(out_tokens.mean()),
            "answer_tokens_median": float(np.median(out_tokens)),
            "predictor_trained_without": source,
            "speed": args.speed,
            "window_split_s": WARMUP_S,
            "wall_s": round(time.time() - started, 1),
        }
        found["acceptance"] = acceptance(found["scheduler"])
        if args.before:
            before = run(("scheduler",), demand_tokens="p50")
            found["before_p50_sizing"] = {
                **before["scheduler"],
                "acceptance": acceptance(before["scheduler"]),
            }
            say(f"{source} (p50 sizing): {summary_line({'scheduler': found['before_p50_sizing']})}")
        if args.decompose:
            const_ms = found["scheduler"]["policies"]["ours-constant"]["e2e_mean_ms"]
            found["decomposition"] = decompose(
                catalog, policy, base, args.seed, artifact, const_ms, args.speed
            )
        result["sources"][source] = found
        say(f"{source}: {summary_line(found)}")
    result["wall_s"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.sizings:
        Path(f"{out}_sizings.json").write_text(json.dumps(result, indent=2))
        return 0
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(json.dumps({k: v["acceptance"] for k, v in result["sources"].items()}, indent=2))
    return 0


def sizings_line(found: dict) -> str:
    """Per sizing: ours' cost, SLO attainment, mean / p95 e2e; the constant's and truth's."""
    parts = []
    for variant, s in found.items():
        p = s["policies"]
        parts.append(
            f"{variant}: ours ${p['ours']['cost_usd']:.2f} {p['ours']['slo_attainment']:.2%} "
            f"e2e {p['ours']['e2e_mean_ms'] / 1000:.2f}/{p['ours']['e2e_p95_ms'] / 1000:.1f} s; "
            f"constant ${p['ours-constant']['cost_usd']:.2f} "
            f"{p['ours-constant']['slo_attainment']:.2%}; truth ${p['oracle']['cost_usd']:.2f} "
            f"{p['oracle']['slo_attainment']:.2%}"
        )
    return "\n  ".join(parts)


def window_gains(wins: dict) -> dict:
    """Per window (before / after the split): 1 - mean e2e / the constant's, for the
    predictor and the truth."""
    out = {}
    for key in ("before", "after"):
        const = wins["ours-constant"][key]["e2e_mean_ms"]
        out[key] = {
            name: (1 - wins[policy][key]["e2e_mean_ms"] / const)
            if const and wins[policy][key]["e2e_mean_ms"]
            else None
            for name, policy in (("predictor", "ours"), ("truth", "oracle"))
        }
    return out


def summary_line(found: dict) -> str:
    s = found["scheduler"]
    share = s["ours_share_of_truth_gain"]
    err = found.get("prediction_error", {})
    return (
        f"predictor vs constant {s['ours_e2e_mean_gain_over_constant']:+.1%} mean e2e "
        f"(truth {s['truth_e2e_mean_gain_over_constant']:+.1%}, share "
        f"{'-' if share is None else f'{share:.0%}'}), cost {s['ours_cost_gain_over_constant']:+.1%}; "
        f"Spearman {err.get('p50_spearman', float('nan')):.2f}; by window "
        + json.dumps(s["window_gains"])
    )


def plot(result: dict, path: Path) -> None:
    panels = {
        f"{source} on Azure x{found['setup']['rate_scale']:g}": found
        for source, found in result["sources"].items()
    }
    title = (
        "real prompts with their real answer lengths; predictor trained without the source "
        "(2-core EPYC, shared)"
    )
    if any("before_p50_sizing" in f for f in panels.values()):
        plot_sizing(panels, path, title + "; planner sized from p50 (grey) or expected tokens")
        return
    metrics = (*PLOT_METRICS[:2], ("ttft_mean_ms", "TTFT mean (s)"), PLOT_METRICS[3])
    plot_compare(panels, path, title, metrics)


def plot_sizing(panels: dict, path: Path, title: str) -> None:
    """Constant, predictor and truth with the scheduler, the planner sizing output from p50
    (`before_p50_sizing`, grey) and from expected tokens (blue), per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, labels = ["ours-constant", "ours", "oracle"], ["constant", "predictor", "truth"]
    metrics = (*PLOT_METRICS[:2], ("slo_attainment", "SLO attainment (%)"), PLOT_METRICS[3])
    sides = (("p50 sizing", "before_p50_sizing", "tab:gray"),
             ("main runs' sizing", "scheduler", "tab:blue"))  # fmt: skip
    fig, axes = plt.subplots(len(panels), 4, figsize=(15, 3.6 * len(panels)), squeeze=False)
    for row_axes, (label, found) in zip(axes, panels.items(), strict=True):
        for ax, (key, name) in zip(row_axes, metrics, strict=True):
            x = np.arange(len(names))
            for k, (side, field, color) in enumerate(sides):
                vals = [found[field]["policies"][n][key] for n in names]
                scale = 100 if key == "slo_attainment" else 1 if key == "cost_usd" else 1e-3
                ax.bar(x + (k - 0.5) * 0.4, [v * scale for v in vals], 0.4, color=color,
                       label=side)  # fmt: skip
            ax.set_xticks(x, labels)
            ax.set_title(f"{label}: {name}", fontsize=9)
            if key == "slo_attainment":
                ax.set_ylim(70, 100)
        row_axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
