"""Draw the planner-sizing A/B (cost against SLO attainment, one panel per trace, one marker
per sizing or `--planner` variant) from `bench/cost_benchmark.py --sizings|--planner ...
--json-out F` files and
`bench/value_of_prediction.py --sizings ...` (`<out>_sizings.json`).

    python bench/sizing_plot.py --out docs/benchmark/demand_level.png \\
        "Azure 1x=a.json" "Mooncake=m.json" "arena-hard v2 x2=realtext_sizings.json:arena_hard"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MARKERS = {"p50": "o", "expected": "s", "p50+level": "^", "expected+level": "D"}
SIZES = {"p50": 170, "expected": 120, "p50+level": 80, "expected+level": 40}  # coinciding
# runs stay visible: the larger markers are drawn first


def points(spec: str) -> tuple[str, dict[str, tuple[float, float]]]:
    """(panel title, {sizing: (SLO attainment %, cost $)}) of ours from one file."""
    title, _, path = spec.partition("=")
    path, _, source = path.partition(":")
    data = json.loads(Path(path).read_text())
    if source:  # value_of_prediction: {sources: {src: {sizing: {policies: {ours: row}}}}}
        rows = data["sources"][source]
        return title, {
            v: (100 * s["policies"]["ours"]["slo_attainment"], s["policies"]["ours"]["cost_usd"])
            for v, s in rows.items()
        }
    return title, {
        r["sizing"]: (100 * r["slo_attainment"], r["cost_usd"])
        for r in data
        if r["policy"] == "ours"
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("panels", nargs="+", help='"title=file.json" or "title=file.json:source"')
    ap.add_argument("--out", required=True)
    ap.add_argument("--note", default="simulator; shared 2-core AMD EPYC, no GPU")
    ap.add_argument(
        "--title",
        default="Planner sizing: p50 / expected, with and without the learned level",
        help="the figure's title (the note follows in brackets)",
    )
    args = ap.parse_args()
    panels = [points(p) for p in args.panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    for ax, (title, pts) in zip(axes[0], panels, strict=True):
        for i, (sizing, (slo, cost)) in enumerate(pts.items()):
            ax.scatter(slo, cost, marker=MARKERS.get(sizing, "os^D"[i % 4]),
                       s=SIZES.get(sizing, 170 - 50 * (i % 3)),
                       label=sizing, edgecolors="black", linewidths=0.5)  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ours' SLO attainment (%)")
        ax.set_ylabel("cost ($)")
        ax.grid(alpha=0.3)
        ax.margins(0.25)
    handles, labels = max(
        (ax.get_legend_handles_labels() for ax in axes[0]), key=lambda h: len(h[1])
    )
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(f"{args.title} ({args.note})", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
