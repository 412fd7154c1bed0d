"""Leave-one-source-out Kendall tau of training variants of the predictor (issue 31).

Each variant is `TrainConfig` with a few fields changed (`offline/variants.py: VARIANTS`);
each source is scored by the variant fitted on the other four (the p50 of the shipped
pipeline, conformal step skipped: tau only). Prints one row per variant (tau per left-out
source and the unweighted mean) and draws them to a PNG. Minutes per variant on 2 cores.
Usage: nice -n 10 python bench/predictor_variants.py [--variants NAME ...] [--png PATH]
[--json PATH] [--nested-variants]; --replot JSON --png PATH redraws a recorded run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

TITLE = "Predictor variants, leave-one-source-out (2-core EPYC, shared machine)"


def _draw(rows: dict[str, dict[str, float]], path: Path, title: str = TITLE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = list(next(iter(rows.values())))
    cols = [*sources, "mean"]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(rows)
    for i, (name, taus) in enumerate(rows.items()):
        values = [taus[s] for s in sources] + [float(np.mean(list(taus.values())))]
        ax.bar(np.arange(len(cols)) + i * width, values, width, label=name)
    ax.axhline(0.25, color="k", lw=0.8, ls="--", label="goal (mean, arena-hard v0.1)")
    ax.axhline(0.15, color="grey", lw=0.8, ls=":", label="floor (every source)")
    ax.set_xticks(np.arange(len(cols)) + 0.4 - width / 2, cols)
    ax.set_ylabel("Kendall tau, source left out")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    from orchestrator.predict.offline.data import data_available
    from orchestrator.predict.offline.fit import TrainConfig
    from orchestrator.predict.offline.importance import ImportanceConfig
    from orchestrator.predict.offline.table import cached_table
    from orchestrator.predict.offline.variants import (
        TRAFFIC_VARIANTS,
        VARIANTS,
        nested_configs,
        nested_importance,
        tau_by_source,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument(
        "--traffic",
        nargs="*",
        choices=list(TRAFFIC_VARIANTS),
        default=[],
        help="also: the shipped configuration weighted toward the left-out source's prompts",
    )
    ap.add_argument(
        "--nested",
        action="store_true",
        help="then the nested check of --traffic (no reweighting among the candidates; needs "
        "the shipped variant and all five sources)",
    )
    ap.add_argument(
        "--nested-variants",
        action="store_true",
        help="then the nested check of the choice among --variants (inner folds choose, the "
        "left-out source measures; needs all sources)",
    )
    ap.add_argument("--sources", nargs="*", help="left-out sources (default: all five)")
    ap.add_argument("--png", type=Path, help="draw the table here")
    ap.add_argument("--json", type=Path, help="write the taus here")
    ap.add_argument("--replot", type=Path, help="draw --png from a --json file (no training)")
    ap.add_argument("--title", default=TITLE, help="the chart's title")
    args = ap.parse_args()
    if args.replot:
        rows = json.loads(args.replot.read_text(encoding="utf-8"))
        _draw(rows, args.png or Path("variants.png"), args.title)
        return 0
    if not data_available():
        print("shared data absent: nothing to evaluate", file=sys.stderr)
        return 2
    if args.nested and ("shipped" not in args.variants or not args.traffic or args.sources):
        print("--nested needs --variants shipped, --traffic and all sources", file=sys.stderr)
        return 2
    if args.nested_variants and args.sources:
        print("--nested-variants needs all sources", file=sys.stderr)
        return 2
    table = cached_table()
    rows: dict[str, dict[str, float]] = {}

    def say(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    def show(label: str, taus: dict[str, float]) -> None:
        rows[label] = taus
        print(
            f"| {label} | "
            + " | ".join(f"{v:.3f}" for v in taus.values())
            + f" | {np.mean(list(taus.values())):.3f} |",
            flush=True,
        )

    for name in args.variants:
        label, fields = VARIANTS[name]
        print(f"{name}:", file=sys.stderr, flush=True)
        cfg = TrainConfig(**fields)  # type: ignore[arg-type]
        show(label, tau_by_source(table, cfg, sources=args.sources, progress=say))
    for name in args.traffic:
        label, imp = TRAFFIC_VARIANTS[name]
        print(f"{name}:", file=sys.stderr, flush=True)
        taus = tau_by_source(table, TrainConfig(), args.sources, progress=say, importance=imp)
        show(label, taus)
    if args.nested:
        candidates = [ImportanceConfig(temper=0.0)] + [TRAFFIC_VARIANTS[n][1] for n in args.traffic]
        outer = [rows[VARIANTS["shipped"][0]]] + [
            rows[TRAFFIC_VARIANTS[n][0]] for n in args.traffic
        ]
        choice, taus = nested_importance(table, TrainConfig(), candidates, outer, progress=say)
        picked = ", ".join(f"{s}: {(['none', *args.traffic])[k]}" for s, k in choice.items())
        print(f"nested choice per left-out source: {picked}")
        show("traffic weighting, chosen on nested folds", taus)
    if args.nested_variants:
        cfgs = [TrainConfig(**VARIANTS[n][1]) for n in args.variants]  # type: ignore[arg-type]
        outer = [rows[VARIANTS[n][0]] for n in args.variants]
        choice, taus, _ = nested_configs(table, cfgs, outer, progress=say)
        picked = ", ".join(f"{s}: {args.variants[k]}" for s, k in choice.items())
        print(f"nested choice per left-out source: {picked}")
        show("variant chosen on nested folds", taus)
    load = os.getloadavg()[0]
    print(f"(load average {load:.1f} at the end; {os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if args.png:
        _draw(rows, args.png, args.title)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
