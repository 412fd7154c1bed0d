"""The simulator's report: a markdown table and PNG plots (matplotlib, Agg backend).

Files written into the report folder:
- `report.md`: one row per policy (cost, $/1M output tokens, SLO attainment, quality,
  latency percentiles, rejections) and the run's notes;
- `cost_vs_slo.png`: cost against SLO attainment, one point per policy;
- `replicas_<policy>.png`: replicas per profile over time against the load (requests ongoing);
- `ttft.png`: TTFT distribution (CDF) per policy;
- `result.json`: the same figures as `--json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from orchestrator.simulate.run import SimResult


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def markdown_table(result: SimResult) -> str:
    head = (
        "| policy | $ total | $/1M out tok | SLO att. | quality | TTFT p50/p95/p99 ms "
        "| TPOT p50/p95 ms | e2e mean/p95 s | vs constant e2e/$ | rejected | replica-h |\n"
        "|---|---:|---:|---:|---:|---|---|---|---|---:|---:|\n"
    )
    rows = []
    value = result.value_of_prediction()
    for name, run in result.policies.items():
        m = run.metrics
        v = value.get(name)
        vs = f"{_fmt(v['e2e_mean'], '+.1%')}/{_fmt(v['cost'], '+.1%')}" if v else "-"
        mean = m.get("e2e_mean_ms")
        t, p, e = m["ttft_ms"], m["tpot_ms"], m["e2e_ms"]
        rows.append(
            f"| {name} | {m['cost_usd']:.2f} | {_fmt(m['cost_per_million_output_tokens'], '.2f')} "
            f"| {m['slo_attainment']:.2%} | {m['quality']:.2%} "
            f"| {_fmt(t['p50'], '.0f')}/{_fmt(t['p95'], '.0f')}/{_fmt(t['p99'], '.0f')} "
            f"| {_fmt(p['p50'], '.1f')}/{_fmt(p['p95'], '.1f')} "
            f"| {_fmt(mean / 1000 if mean is not None else None, '.1f')}"
            f"/{_fmt(e['p95'] / 1000 if e['p95'] is not None else None, '.1f')} | {vs} "
            f"| {m['rejected']} | {sum(m['replica_hours'].values()):.1f} |"
        )
    return head + "\n".join(rows) + "\n"


def markdown(result: SimResult) -> str:
    lines = [
        "# Simulation report",
        "",
        f"{len(result.requests)} requests; profiles: {', '.join(result.profiles)}.",
        "",
        markdown_table(result),
        "Rejections by reason: "
        + "; ".join(
            f"{n}: {run.metrics['rejected_by_reason'] or 'none'}"
            for n, run in result.policies.items()
        ),
        "",
        f"Prediction error (ours): {result.prediction}",
        "",
        "Wall time (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result.wall_s.items()),
        "",
        "CPU time (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result.cpu_s.items()),
        "",
        *[f"- {n}" for n in result.notes],
        "",
    ]
    return "\n".join(lines)


def write_report(result: SimResult, folder: str | Path) -> list[Path]:
    """Write report.md, result.json and the PNGs; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.md", out / "result.json"]
    files[0].write_text(markdown(result), encoding="utf-8")
    files[1].write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")

    fig, ax = plt.subplots(figsize=(6, 4))
    points: dict[tuple[float, float], list[str]] = {}  # policies on the same point share a label
    for name, run in result.policies.items():
        m = run.metrics
        key = (round(m["slo_attainment"] * 100, 3), round(m["cost_usd"], 2))
        points.setdefault(key, []).append(name)
    for (slo, cost), names in points.items():
        ax.scatter(slo, cost, s=40)
        ax.annotate(
            ", ".join(names), (slo, cost), fontsize=8, xytext=(4, 4), textcoords="offset points"
        )
    ax.set_xlabel("SLO attainment (%)")
    ax.set_ylabel("cost (USD)")
    ax.set_title("Cost vs SLO attainment")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    files.append(out / "cost_vs_slo.png")
    fig.savefig(files[-1], dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, run in result.policies.items():
        o = run.outcome
        v = np.sort(o.ttft_s[o.profile >= 0] * 1000)
        if len(v):
            ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=name)
    ax.set_xscale("log")
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("share of served requests")
    ax.set_title("TTFT distribution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    files.append(out / "ttft.png")
    fig.savefig(files[-1], dpi=90)
    plt.close(fig)

    for name, run in result.policies.items():
        tl = run.outcome.timeline
        if not tl:
            continue
        t = np.array([x[0] for x in tl]) / 60.0
        reps = np.array([x[1] for x in tl])
        load = np.array([x[2] for x in tl])
        used = [i for i in range(reps.shape[1]) if reps[:, i].any() or load[:, i].any()]
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
        for i in used:
            a1.step(t, reps[:, i], where="post", label=result.profiles[i])
            a2.plot(t, load[:, i], label=result.profiles[i], lw=0.8)
        a1.set_ylabel("replicas")
        a1.set_title(f"{name}: replicas per profile vs load")
        a1.legend(fontsize=7)
        a2.set_ylabel("requests ongoing")
        a2.set_xlabel("minutes")
        fig.tight_layout()
        files.append(out / f"replicas_{name}.png")
        fig.savefig(files[-1], dpi=80)
        plt.close(fig)
    return files
