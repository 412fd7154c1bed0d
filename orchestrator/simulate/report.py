"""The simulator's report: a markdown table and PNG plots (matplotlib, Agg backend).

Files written into the report folder:
- `report.md`: one row per policy (cost, $/1M output tokens, SLO attainment of all requests
  and of those the server's attainment judges (metrics.py), quality,
  latency percentiles, rejections), SLO attainment per tenant, ours' saving against the
  cheapest baseline at our quality (within 1 point), and the run's notes;
- `cost_vs_quality.png`, `cost_vs_slo.png`: one marker per policy (a distinct shape and
  colour each, legend outside the data);
- `replicas_<policy>.png`: replicas per profile over time, stacked, against the load
  (requests ongoing per profile);
- `ttft.png`: TTFT distribution (CDF over ALL requests: a refused request never reaches the
  curve, so a policy that refuses stays below 1) with each tenant's TTFT target drawn;
- `result.json`: the same figures as `--json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from orchestrator.simulate.metrics import saving_at_quality
from orchestrator.simulate.run import SimResult

MARKERS = "osD^vP*Xhp<>"
LINESTYLES = ("-", "--", "-.", ":")


def _fmt(v: float | None, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def markdown_table(result: SimResult) -> str:
    head = (
        "| policy | $ total | $/1M out tok | SLO att. | judged | quality | TTFT p50/p95/p99 ms "
        "| TPOT p50/p95 ms | e2e mean/p95 s | vs constant e2e/$ | rejected | replica-h |\n"
        "|---|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|\n"
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
            f"| {m['slo_attainment']:.2%} | {_fmt(m.get('slo_attainment_judged'), '.2%')} "
            f"| {m['quality']:.2%} "
            f"| {_fmt(t['p50'], '.0f')}/{_fmt(t['p95'], '.0f')}/{_fmt(t['p99'], '.0f')} "
            f"| {_fmt(p['p50'], '.1f')}/{_fmt(p['p95'], '.1f')} "
            f"| {_fmt(mean / 1000 if mean is not None else None, '.1f')}"
            f"/{_fmt(e['p95'] / 1000 if e['p95'] is not None else None, '.1f')} | {vs} "
            f"| {m['rejected']} | {sum(m['replica_hours'].values()):.1f} |"
        )
    return head + "\n".join(rows) + "\n"


def tenant_table(result: SimResult) -> str:
    """SLO attainment per tenant (rows) and policy (columns)."""
    names = list(result.policies)
    tenants = sorted({t for r in result.policies.values()
                      for t in r.metrics["slo_attainment_per_tenant"]})  # fmt: skip
    head = "| tenant | requests | " + " | ".join(names) + " |\n"
    head += "|---|---:|" + "---:|" * len(names) + "\n"
    rows = []
    for t in tenants:
        cells = []
        count = 0
        for n in names:
            got = result.policies[n].metrics["slo_attainment_per_tenant"].get(t, {})
            count = got.get("requests", count)
            cells.append(_fmt(got.get("slo_attainment"), ".2%"))
        rows.append(f"| {t} | {count} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def saving_line(result: SimResult) -> str:
    pols = {n: r.metrics for n, r in result.policies.items()}
    if "ours" not in pols:
        return ""
    found = saving_at_quality(pols)
    q = pols["ours"]["quality"]
    if found is None:
        return f"No baseline reaches ours' quality ({q:.2%}, within 1 point)."
    name, ratio = found
    return (
        f"At ours' quality ({q:.2%}, within 1 point) the cheapest baseline is {name} "
        f"(${pols[name]['cost_usd']:.2f}, quality {pols[name]['quality']:.2%}): ours costs "
        f"{ratio:.2f}x less (${pols['ours']['cost_usd']:.2f})."
    )


def markdown(result: SimResult) -> str:
    lines = [
        "# Simulation report",
        "",
        f"{len(result.requests)} requests; profiles: {', '.join(result.profiles)}.",
        "",
        markdown_table(result),
        saving_line(result),
        "",
        "## SLO attainment per tenant",
        "",
        tenant_table(result),
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


def _scatter(plt, result: SimResult, x_key: str, x_label: str, title: str, path: Path) -> None:
    """Cost against one share (quality or SLO attainment): a marker and colour per policy."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = []
    for k, (name, run) in enumerate(result.policies.items()):
        m = run.metrics
        x = 100 * (m[x_key] or 0.0)
        xs.append(x)
        ax.scatter(x, m["cost_usd"], s=70, marker=MARKERS[k % len(MARKERS)], label=name,
                   color=plt.cm.tab10(k % 10), alpha=0.85, edgecolors="black", linewidths=0.5)  # fmt: skip
    lo, hi = min(xs), max(xs)
    pad = max(0.5, (hi - lo) * 0.1)
    ax.set_xlim(lo - pad, min(100.5, hi + pad) if hi <= 100 else hi + pad)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(x_label)
    ax.set_ylabel("cost (USD)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _ttft(plt, result: SimResult, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, (name, run) in enumerate(result.policies.items()):
        o = run.outcome
        n = len(o.profile)
        v = np.sort(o.ttft_s[o.profile >= 0] * 1000)
        if not len(v):
            continue
        refused = n - len(v)
        ax.plot(v, np.arange(1, len(v) + 1) / n, color=plt.cm.tab10(k % 10),
                ls=LINESTYLES[k % len(LINESTYLES)], lw=1.4,
                label=f"{name} ({refused} refused)" if refused else name)  # fmt: skip
    targets = result.targets.ttft_s
    for t in sorted({float(x) for x in targets[np.isfinite(targets)]}):
        ax.axvline(t * 1000, color="grey", ls=":", lw=1)
        ax.annotate(f"TTFT target {t * 1000:g} ms", (t * 1000, 0.02), rotation=90, fontsize=7,
                    color="grey", xytext=(2, 0), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("share of all requests (refused: never)")
    ax.set_title("TTFT distribution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _replicas(plt, result: SimResult, name: str, path: Path) -> bool:
    tl = result.policies[name].outcome.timeline
    if not tl:
        return False
    t = np.array([x[0] for x in tl]) / 60.0
    reps = np.array([x[1] for x in tl])
    load = np.array([x[2] for x in tl])
    used = [i for i in range(reps.shape[1]) if reps[:, i].any() or load[:, i].any()]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    colors = [plt.cm.tab10(k % 10) for k in range(len(used))]
    # replicas stacked (equal counts would hide each other as lines), load as lines
    a1.stackplot(t, reps[:, used].T, step="post", colors=colors, alpha=0.8,
                 labels=[result.profiles[i] for i in used])  # fmt: skip
    for k, i in enumerate(used):
        a2.plot(t, load[:, i], lw=0.9, color=colors[k], ls=LINESTYLES[k % len(LINESTYLES)])
    stacked = reps[:, used].sum(axis=1) if used else np.zeros(1)
    for ax, top in ((a1, float(stacked.max())), (a2, float(load[:, used].max()) if used else 0.0)):
        ax.set_ylim(0, max(1.0, top * 1.1))  # a flat series keeps a 0-based axis
        ax.grid(alpha=0.3)
    a1.set_ylabel("replicas (stacked)")
    a1.set_title(f"{name}: replicas per profile vs load")
    a1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    a2.set_ylabel("requests ongoing")
    a2.set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


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
    files.append(out / "cost_vs_quality.png")
    _scatter(plt, result, "quality", "quality: requests served at the tier they need (%)",
             "Cost vs quality per policy", files[-1])  # fmt: skip
    files.append(out / "cost_vs_slo.png")
    _scatter(plt, result, "slo_attainment", "SLO attainment (%)",
             "Cost vs SLO attainment per policy", files[-1])  # fmt: skip
    files.append(out / "ttft.png")
    _ttft(plt, result, files[-1])
    for name in result.policies:
        path = out / f"replicas_{name}.png"
        if _replicas(plt, result, name, path):
            files.append(path)
    return files
