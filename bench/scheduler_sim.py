"""What prediction is worth once the product schedules by it (simulator, one run).

On two traces at loads that queue, with `deployments/gpu-example.yaml` and
`policies/gpu-example.yaml`, side by side:
  ours:          the product's predictor;
  ours-constant: one constant prediction (the median) for every request;
  oracle:        the true lengths (and needed tier): "truth";
each with the product's scheduler (ingress queue in key order, engines by priority, replicas by
predicted outstanding work) and without it (ablation: Serve's and vLLM's FIFO queues). Traces:
the Azure conversation trace (default x10, the first 15 minutes) and the Mooncake synthetic
trace (long shared-prefix prompts, default x4, whole). Reported per trace: mean and p95 e2e,
mean and p95 TTFT, cost, SLO attainment, quality, refusals; ours' gain over the constant and
the share of truth's gain it reaches (acceptance: >= 25 % lower mean e2e or >= 15 % lower cost
at equal SLO and quality; >= 60 % of truth's e2e gain). Beside each mean e2e, the matched
figures (`simulate.metrics.matched_latency`): the mean over the requests all three served, and
the mean over all requests with each refusal counted at `--refusal-penalty-s` (a policy that
refuses more otherwise leaves its slowest requests out of its mean); the gains and the
acceptance are given on each.

Fairness (Azure): tenant `chat` at 10x the rate of tenant `internal`; `internal`'s TTFT p95
beside `chat` against `internal` alone (acceptance: <= 1.5x), with and without the scheduler.

A load that keeps a queue: `--max-replicas gpt-oss-20b-mxfp4=2,llama8b-fp8-ngram=2,*=0` caps
the planner's replicas per profile in the policy (`*`: every other profile; minima lowered to
fit), so at 10x the pools the traffic uses stay saturated; `--aging-s` sets the policy's
`scheduling.aging_s`.

    nice -n 10 python bench/scheduler_sim.py [--rate 10 --duration 900 --mooncake-rate 4] \
        [--max-replicas NAME=N,...] [--aging-s S] [--traces azure-conv,mooncake] \
        [--out docs/benchmark/scheduler_sim] [--fairness-only] [--permuted-baseline]

`--permuted-baseline`: the constant's row is ours fed the true lengths permuted across requests
(the same spread, no information), so truth's gain over it is what the information is worth.
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
from orchestrator.policy import load_policy_text  # noqa: E402
from orchestrator.simulate import load_traffic, rescale, simulate  # noqa: E402
from orchestrator.simulate.metrics import matched_latency  # noqa: E402

TRACE = ROOT.parent / "shared" / "data" / "azure-trace" / "AzureLLMInferenceTrace_conv.csv"
MOONCAKE = ROOT.parent / "shared" / "data" / "mooncake-trace" / "synthetic_trace.jsonl"
WARMUP_S = 300.0  # fairness is also reported without the requests arriving before this
KEYS = ("e2e_mean_ms", "ttft_mean_ms", "cost_usd", "slo_attainment", "quality", "rejected")
# a refusal counted at this e2e in the penalised mean: about the interactive classes' wait
# bound (20x a TTFT p95 target of 0.5-0.8 s, at least 10 s; scheduling.max_wait_s)
REFUSAL_PENALTY_S = 20.0
# the mean e2e figures the gains are given on: served-only, matched, refusals penalised
E2E_MEANS = {
    "": "e2e_mean_ms",
    "_matched": "e2e_mean_matched_ms",
    "_penalised": "e2e_mean_refusal_penalty_ms",
}


def permuted_truth(requests: list, seed: int):
    """A `constant_feed` for `simulate`: every request gets another request's true length
    (a fixed permutation) as its p50 and p90, the predictor's class kept: the lengths'
    spread without their information (`--permuted-baseline`)."""
    from orchestrator.simulate.policies import Prepared

    lengths = np.random.default_rng([seed, 7]).permutation([r.output_tokens for r in requests])

    def feed(prepared):
        return Prepared(
            [
                b.model_copy(update={"p50_output_tokens": int(n), "p90_output_tokens": int(n)})
                for b, n in zip(prepared.budgets, lengths, strict=True)
            ]
        )

    return feed


def bench_policy(
    path: Path, catalog, max_replicas: dict[str, int] | None = None, aging_s: float | None = None
):
    """The policy at `path`, with the planner's replicas per profile capped (`*`: every other
    profile of the catalog; a minimum above its cap lowered to it) and `scheduling.aging_s`."""
    import yaml

    doc = yaml.safe_load(path.read_text())
    caps = dict(max_replicas or {})
    rest = caps.pop("*", None)
    if rest is not None:
        caps = {**{p.name: rest for p in catalog.profiles}, **caps}
    profiles = doc.setdefault("autoscaling", {}).setdefault("profiles", {})
    for name, n in caps.items():
        own = profiles.setdefault(name, {})
        own["max_replicas"] = n
        own["min_replicas"] = min(own.get("min_replicas", 0), n)
    if aging_s is not None:
        doc.setdefault("scheduling", {})["aging_s"] = aging_s
    return load_policy_text(yaml.safe_dump(doc), str(path), catalog, resolve_secrets=False)


def row(m: dict) -> dict:
    out = {k: m[k] for k in KEYS}
    out["ttft_p95_ms"] = m["ttft_ms"]["p95"]
    out["e2e_p95_ms"] = m["e2e_ms"]["p95"]
    return out


def queue_figures(out, requests) -> dict:
    """Where a policy's served requests waited (ms): in the ingress queue (arrival to a
    replica, `Outcome.queued_s`), then on the replica to the first token (prefill, and vLLM's
    waiting queue), then decoding; and what a batch slot's time (replica to the end) follows:
    its Spearman correlation with the true output and with the prompt."""
    from scipy.stats import spearmanr

    served = out.profile >= 0
    wait = out.queued_s[served]
    slot = (out.e2e_s - out.queued_s)[served]
    prompt = np.array([r.prompt_tokens for r in requests])[served]
    output = np.array([r.output_tokens for r in requests])[served]
    return {
        "ingress_wait_mean_ms": float(np.mean(wait) * 1000),
        "ingress_wait_p95_ms": float(np.percentile(wait, 95) * 1000),
        "ingress_waited_share": float(np.mean(wait > 0.1)),
        "replica_ttft_mean_ms": float(np.mean((out.ttft_s - out.queued_s)[served]) * 1000),
        "decode_mean_ms": float(np.mean((out.e2e_s - out.ttft_s)[served]) * 1000),
        "slot_time_spearman_output": float(spearmanr(slot, output)[0]),
        "slot_time_spearman_prompt": float(spearmanr(slot, prompt)[0]),
    }


def trace_shape(requests, catalog, profile: str = "gpt-oss-20b-mxfp4") -> dict:
    """The work a trace brings: prompt and output sizes, and the share of a replica's time
    that is decode on `profile` (prefill at its prefill rate; decode at its full-batch
    throughput, the cheapest decode gets), with every prompt prefilled whole and with each
    distinct prefix block (`SimRequest.prefix_blocks`) prefilled once (a perfect cache)."""
    from scipy.stats import spearmanr

    from orchestrator.simulate.replica import BLOCK_TOKENS

    perf = next(p for p in catalog.profiles if p.name == profile).performance
    prompt = np.array([r.prompt_tokens for r in requests], dtype=float)
    output = np.array([r.output_tokens for r in requests], dtype=float)
    blocks = {b for r in requests for b in (r.prefix_blocks or ())}
    uncached = prompt.sum() - sum(
        min(len(r.prefix_blocks or ()) * BLOCK_TOKENS, r.prompt_tokens) for r in requests
    )
    decode_s = output.sum() / perf.output_tokens_per_s
    prefill_s = prompt.sum() / perf.prefill_tokens_per_s
    cached_s = (uncached + len(blocks) * BLOCK_TOKENS) / perf.prefill_tokens_per_s
    return {
        "prompt_mean": float(prompt.mean()),
        "prompt_cv": float(prompt.std() / prompt.mean()),
        "output_mean": float(output.mean()),
        "output_cv": float(output.std() / output.mean()),
        "spearman_prompt_output": float(spearmanr(prompt, output)[0]),
        "profile": profile,
        "decode_share_of_replica_time": float(decode_s / (decode_s + prefill_s)),
        "decode_share_perfect_prefix_cache": float(decode_s / (decode_s + cached_s)),
    }


def gains(rows: dict) -> dict:
    """Ours' and truth's gains over the constant on each mean e2e (`E2E_MEANS`; the matched
    ones only when the rows carry them), cost, and the SLO and quality differences."""
    const, ours, truth = rows["ours-constant"], rows["ours"], rows["oracle"]
    out: dict = {}
    for suffix, key in E2E_MEANS.items():
        if key not in const:
            continue
        g_ours = 1 - ours[key] / const[key]
        g_truth = 1 - truth[key] / const[key]
        out[f"ours_e2e_mean{suffix}_gain_over_constant"] = g_ours
        out[f"truth_e2e_mean{suffix}_gain_over_constant"] = g_truth
        out[f"ours_share_of_truth_gain{suffix}"] = g_ours / g_truth if g_truth > 0 else None
    return {
        **out,
        "ours_cost_gain_over_constant": 1 - ours["cost_usd"] / const["cost_usd"],
        "slo_ours_minus_constant": ours["slo_attainment"] - const["slo_attainment"],
        "quality_ours_minus_constant": ours["quality"] - const["quality"],
    }


def light_ttft_p95(result, tenant: str, after_s: float = 0.0) -> float:
    """`tenant`'s TTFT p95 (ms) over its served requests arriving from `after_s` on."""
    out = result.policies["ours"].outcome
    mask = np.array([r.tenant == tenant and r.arrival_s >= after_s for r in result.requests])
    mask &= out.profile >= 0
    return float(np.nanpercentile(out.ttft_s[mask], 95) * 1000)


def windows(run, split_s: float) -> dict:
    """Per policy, mean e2e and TTFT (ms) of the served requests arriving before `split_s`
    and from it, with the share of all requests that arrived in each window."""
    arrival = np.array([r.arrival_s for r in run.requests])
    out: dict = {}
    for name, r in run.policies.items():
        served = r.outcome.profile >= 0
        out[name] = {}
        for key, sel in (("before", arrival < split_s), ("after", arrival >= split_s)):
            m = served & sel
            out[name][key] = {
                "requests": int(sel.sum()),
                "refused": int((sel & ~served).sum()),
                "e2e_mean_ms": float(np.mean(r.outcome.e2e_s[m]) * 1000) if m.any() else None,
                "ttft_mean_ms": float(np.mean(r.outcome.ttft_s[m]) * 1000) if m.any() else None,
            }
    return out


def compare(
    catalog,
    policy,
    base: list,
    seed: int,
    new_predictor=None,
    variants=("scheduler", "fifo"),
    split_s: float | None = None,
    penalty_s: float = REFUSAL_PENALTY_S,
    **sim_args,
) -> dict:
    """Ours, the constant and the truth, with the scheduler and without (one trace);
    `new_predictor()`: a fresh predictor for each run (it learns online; default: the
    active artifact); `split_s`: also mean e2e and TTFT of the requests arriving before and
    from it (`windows`); `penalty_s`: a refusal's e2e in the penalised mean
    (`matched_latency`); `sim_args`: more arguments of `simulate` (e.g. `speed`)."""
    out: dict = {}
    for label in variants:
        run = simulate(
            catalog,
            policy,
            copy.deepcopy(base),
            policies=["ours", "oracle", "ours-constant"],
            seed=seed,
            scheduler=label == "scheduler",
            predictor=new_predictor() if new_predictor else None,
            **sim_args,
        )
        matched = matched_latency({n: r.outcome for n, r in run.policies.items()}, penalty_s)
        rows = {
            name: {**row(r.metrics), **matched[name], **queue_figures(r.outcome, run.requests)}
            for name, r in run.policies.items()
        }
        out[label] = {"policies": rows, **gains(rows)}
        if split_s is not None:
            out[label]["windows"] = windows(run, split_s)
        out.setdefault("prediction_error", run.prediction)
        print(label, json.dumps(out[label], indent=1), file=sys.stderr, flush=True)
    return out


def fairness(catalog, policy, base: list, seed: int) -> dict:
    out = {}
    for label, scheduler in (("scheduler", True), ("fifo", False)):
        mixed = simulate(
            catalog,
            policy,
            copy.deepcopy(base),
            policies=["ours"],
            seed=seed,
            scheduler=scheduler,
            tenant_weights={"chat": 10.0, "internal": 1.0},
        )
        alone_reqs = [copy.copy(r) for r in mixed.requests if r.tenant == "internal"]
        for i, r in enumerate(alone_reqs):
            r.rid = i
            r.prediction = None
        alone = simulate(
            catalog, policy, alone_reqs, policies=["ours"], seed=seed, scheduler=scheduler
        )
        a, m = light_ttft_p95(alone, "internal"), light_ttft_p95(mixed, "internal")
        a_w, m_w = (light_ttft_p95(r, "internal", WARMUP_S) for r in (alone, mixed))
        out[label] = {
            "internal_alone_ttft_p95_ms": a,
            "internal_beside_chat_ttft_p95_ms": m,
            "ratio": m / a,
            "chat_ttft_p95_ms": light_ttft_p95(mixed, "chat"),
            # the cluster starts small (the policy's warm floors): its first minutes saturate
            f"after_{WARMUP_S:g}s": {
                "internal_alone_ttft_p95_ms": a_w,
                "internal_beside_chat_ttft_p95_ms": m_w,
                "ratio": m_w / a_w,
                "chat_ttft_p95_ms": light_ttft_p95(mixed, "chat", WARMUP_S),
            },
        }
        print(label, out[label], file=sys.stderr, flush=True)
    return out


def acceptance(s: dict) -> dict:
    """#27's two criteria on each mean e2e the gains give (served-only, matched, penalised)."""
    cost = (
        s["ours_cost_gain_over_constant"] >= 0.15
        and s["slo_ours_minus_constant"] >= -0.005
        and s["quality_ours_minus_constant"] >= -0.005
    )
    out = {}
    for suffix in E2E_MEANS:
        if f"ours_e2e_mean{suffix}_gain_over_constant" not in s:
            continue
        out[f"e2e{suffix}_25pct_or_cost_15pct_over_constant"] = (
            s[f"ours_e2e_mean{suffix}_gain_over_constant"] >= 0.25 or cost
        )
        out[f"share_of_truth_gain{suffix}_60pct"] = (
            s[f"ours_share_of_truth_gain{suffix}"] or 0
        ) >= 0.6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trace", default=str(TRACE))
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=900.0)
    ap.add_argument("--mooncake", default=str(MOONCAKE))
    ap.add_argument("--mooncake-rate", type=float, default=4.0)
    ap.add_argument("--no-fairness", action="store_true")
    ap.add_argument("--no-fifo", action="store_true", help="only with the scheduler")
    ap.add_argument(
        "--refusal-penalty-s",
        type=float,
        default=REFUSAL_PENALTY_S,
        help="a refusal's e2e in the penalised mean (default %(default)s s)",
    )
    ap.add_argument(
        "--fairness-only",
        action="store_true",
        help="only the fairness runs, written to <out>_fairness.json (the rest kept)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-replicas",
        default="",
        help="NAME=N,... the planner's replica caps per profile (`*`: every other profile)",
    )
    ap.add_argument("--aging-s", type=float, default=None, help="the policy's scheduling.aging_s")
    ap.add_argument("--traces", default="azure-conv,mooncake", help="which traces to run")
    ap.add_argument(
        "--permuted-baseline",
        action="store_true",
        help="the constant's row fed the true lengths permuted across requests instead",
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmark" / "scheduler_sim"))
    args = ap.parse_args()
    catalog = load_catalog(ROOT / "deployments" / "gpu-example.yaml")
    caps = dict(kv.split("=") for kv in args.max_replicas.split(",") if kv)
    policy = bench_policy(
        ROOT / "policies" / "gpu-example.yaml",
        catalog,
        {k: int(v) for k, v in caps.items()},
        args.aging_s,
    )
    traces = {
        "azure-conv": (args.trace, args.rate, args.duration),
        "mooncake": (args.mooncake, args.mooncake_rate, None),
    }
    traces = {k: v for k, v in traces.items() if k in args.traces.split(",")}
    result: dict = {
        "setup": {"machine": "2-core AMD EPYC, no GPU, shared with other work"},
        "traces": {},
    }
    t0 = time.time()
    if args.fairness_only:
        base = rescale(
            load_traffic(args.trace, seed=args.seed),
            rate_scale=args.rate,
            duration_s=args.duration,
            seed=args.seed,
        )
        found = fairness(catalog, policy, base, args.seed)
        found["acceptance_1_5x"] = found["scheduler"]["ratio"] <= 1.5
        found["setup"] = {**result["setup"], "rate_scale": args.rate, "duration_s": args.duration}
        path = Path(args.out + "_fairness.json")
        path.write_text(json.dumps(found, indent=2))
        print(json.dumps(found, indent=2))
        return 0
    azure_base: list = []
    for name, (path, rate, duration) in traces.items():
        base = rescale(
            load_traffic(path, seed=args.seed), rate_scale=rate, duration_s=duration, seed=args.seed
        )
        azure_base = azure_base or base
        print(name, len(base), "requests", file=sys.stderr, flush=True)
        variants = ("scheduler",) if args.no_fifo else ("scheduler", "fifo")
        feed = {"constant_feed": permuted_truth(base, args.seed)} if args.permuted_baseline else {}
        found = compare(
            catalog,
            policy,
            base,
            args.seed,
            variants=variants,
            penalty_s=args.refusal_penalty_s,
            **feed,
        )
        found["setup"] = {
            "trace": Path(path).name,
            "rate_scale": rate,
            "duration_s": duration,
            "requests": len(base),
            "limits": "as written (fixed)",
            "max_replicas": caps or "as written",
            "aging_s": policy.spec.scheduling.aging_s,
            "refusal_penalty_s": args.refusal_penalty_s,
            "baseline": "permuted true lengths" if args.permuted_baseline else "constant",
        }
        found["trace_shape"] = trace_shape(base, catalog)
        found["acceptance"] = acceptance(found["scheduler"])
        result["traces"][name] = found
    if not args.no_fairness:
        result["fairness"] = fairness(catalog, policy, azure_base, args.seed)
        result["fairness"]["acceptance_1_5x"] = result["fairness"]["scheduler"]["ratio"] <= 1.5
    result["wall_s"] = time.time() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(json.dumps({k: v["acceptance"] for k, v in result["traces"].items()}, indent=2))
    return 0


PLOT_METRICS = (
    ("e2e_mean_ms", "mean e2e (s)"),
    ("e2e_p95_ms", "e2e p95 (s)"),
    ("ttft_p95_ms", "TTFT p95 (s)"),
    ("cost_usd", "cost (USD)"),
)
# the main plot adds the matched means (served by all; refusals at the penalty)
MATCHED_METRICS = (
    ("e2e_mean_matched_ms", "mean e2e, served by all (s)"),
    ("e2e_mean_refusal_penalty_ms", "mean e2e, refusals at penalty (s)"),
)


QUEUE_METRIC = ("ingress_wait_mean_ms", "mean ingress wait (s)")


def plot(result: dict, path: Path) -> None:
    panels = {
        f"{trace} x{found['setup']['rate_scale']:g}": found
        for trace, found in result["traces"].items()
    }
    plot_compare(
        panels,
        path,
        "ours fed a constant, the predictor, the truth; with the scheduler and without (FIFO)",
        (PLOT_METRICS[0], *MATCHED_METRICS, *PLOT_METRICS[1:], QUEUE_METRIC),
    )


def plot_compare(panels: dict, path: Path, title: str, metrics=PLOT_METRICS) -> None:
    """One row of bars per panel (a `compare` result): constant, predictor, truth per metric,
    FIFO grey and scheduler blue (the variants the panel holds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["ours-constant", "ours", "oracle"]
    labels = ["constant", "predictor", "truth"]
    fig, axes = plt.subplots(
        len(panels), len(metrics), figsize=(3.8 * len(metrics), 3.6 * len(panels)), squeeze=False
    )
    for row_axes, (label, found) in zip(axes, panels.items(), strict=True):
        variants = [v for v in ("fifo", "scheduler") if v in found]
        width = 0.8 / len(variants)
        for ax, (key, name) in zip(row_axes, metrics, strict=True):
            x = np.arange(len(names))
            for k, variant in enumerate(variants):
                vals = [found[variant]["policies"][n][key] for n in names]
                if key != "cost_usd":
                    vals = [v / 1000 for v in vals]
                color = "tab:gray" if variant == "fifo" else "tab:blue"
                offset = (k - (len(variants) - 1) / 2) * width
                ax.bar(x + offset, vals, width, color=color, label=variant)
            ax.set_xticks(x, labels)
            ax.set_title(f"{label}: {name}", fontsize=9)
        row_axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
