"""Benchmark: cost against expected quality, ours with quality targets vs RouteLLM's threshold.

Replays the Azure conversation trace (../shared/data) on deployments/gpu-example.yaml with
policies/gpu-example.yaml. Expected quality of a request = the difficulty model's predicted
probability that the tier which served it answers well (docs/difficulty.md); the figure is
`quality_share`, the traffic's expected quality over what always-strongest routing gives.
- ours: the product's decide + planner with `quality_target.share_of_strongest = s` written
  into the policy's defaults, one run per s;
- routellm: the strong profile when P(the weak profile's tier answers well) < t, else the weak
  one, one run per t (the same difficulty model: the comparison isolates the router); as
  RouteLLM is deployed, on the catalog's weak and strong profile for every tenant;
- routellm-floor: the same threshold router inside each tenant's constraints (its cheapest and
  its strongest eligible profile: quality floor, allowed profiles, reasoning it forbids);
- routellm-shared: routellm-floor with one strong pool the tenants share where they may.
With --ab, ours also runs with the upgrade rule reverted ("ours-before": an upgrade takes the
cheapest tier meeting the request's need, not the cheapest per unit of quality gained), in the
same run; with --ab-packing, with the packing of spare same-tier pools reverted
("ours-unpacked": `decide._packed` off, token prices alone rank them).
Prints one row per point, the cost ratio at matched quality share (each baseline's cost
interpolated at each of ours' shares), where each run's money goes (replica-hours x price per
profile), the per-tenant shares of a run with a target, and draws `quality_curve.png` (cost vs
quality share per policy).

With --rate-scale X > 1, replica maxima, the cost ceiling and budgets scale by X (as in
bench/cost_benchmark.py).

Calibration window (`--calibrate S`, default: the first half of the window; the Azure hour:
1,751 s): nothing of it is measured, and every run starts from the same shipped priors.
- `--replay-calibration` (**the acceptance table's setting**, docs/difficulty.md): the window
  is replayed on the cluster, unmeasured and unbilled (`simulate(warmup_s=S)`): the predictor
  learns its true lengths online as a server would, and pools and quality accounts are warm
  when the measured window starts, as for a server that has been running;
- without it (`simulate(calibrate_s=S)`): the window only teaches the predictor its true
  lengths, and the measured window starts on a fresh cluster (the policy's initial replicas,
  empty accounts): a warm calibration store, a cold start.
`--calibrate 0` measures the whole window from the priors (cold calibrations, learning online
only), as before session 18. Outputs: `quality_curve[_xX][_calS|_warmS].{json,png}`.

Usage: python bench/quality_curve.py [--duration S] [--rate-scale X] [--calibrate S] [--out DIR]
       [--shares 0.9,0.95] [--thresholds 0.6,0.7] [--baselines routellm,routellm-shared] [--ab]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.paths import PROJECT_ROOT, SHARED_DATA  # noqa: E402
from orchestrator.policy import load_policy  # noqa: E402
from orchestrator.predict import Predictor  # noqa: E402
from orchestrator.simulate import load_traffic, rescale, simulate  # noqa: E402
from orchestrator.simulate.limits import scale_limits  # noqa: E402

TRACE = SHARED_DATA / "azure-trace" / "AzureLLMInferenceTrace_conv.csv"
CATALOG = PROJECT_ROOT / "deployments" / "gpu-example.yaml"
POLICY = PROJECT_ROOT / "policies" / "gpu-example.yaml"


def policy_with_share(share: float | None, folder: Path):
    doc = yaml.safe_load(POLICY.read_text())
    doc.pop("catalog", None)
    if share is not None:
        doc.setdefault("defaults", {})["quality_target"] = {"share_of_strongest": share}
    path = folder / f"policy-{share}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_policy(path, load_catalog(CATALOG), resolve_secrets=False)


def point(metrics: dict, prices: dict[str, float]) -> dict:
    keys = ("cost_usd", "quality_share", "expected_quality", "slo_attainment", "served_by_profile")
    spent = {n: round(h * prices[n], 2) for n, h in metrics["replica_hours"].items() if h > 0}
    return {**{k: metrics[k] for k in keys}, "cost_by_profile": spent}


def matched(
    rows: dict[str, list[dict]], baseline: str, ours: str = "ours"
) -> list[tuple[dict, float | None]]:
    """Each of ours' points with the baseline's cost interpolated at ours' quality share (None
    outside the baseline's range); the baseline's curve is made monotone (its cheapest cost at
    or above each share, the frontier a user would pick from)."""
    pts = sorted(rows[baseline], key=lambda p: p["quality_share"])
    q = np.array([p["quality_share"] for p in pts])
    c = np.minimum.accumulate(np.array([p["cost_usd"] for p in pts])[::-1])[::-1]
    out = []
    for p in rows[ours]:
        share = p["quality_share"]
        out.append((p, float(np.interp(share, q, c)) if q.min() <= share <= q.max() else None))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=None, help="first S seconds (default: 1 h)")
    ap.add_argument("--shares", default="0.8,0.85,0.9,0.95,0.98")
    ap.add_argument("--thresholds", default="0.5,0.6,0.65,0.7,0.75,0.8,0.9")
    ap.add_argument("--rate-scale", type=float, default=1.0, help="arrival rate x this")
    ap.add_argument("--baselines", default="routellm,routellm-floor,routellm-shared")
    ap.add_argument("--ab", action="store_true", help="also ours with the old upgrade rule")
    ap.add_argument(
        "--calibrate",
        type=float,
        default=None,
        help="first S seconds only calibrate the predictor (default: half the window; 0: none)",
    )
    ap.add_argument(
        "--replay-calibration",
        action="store_true",
        help="replay the calibration window on the cluster (warm pools and accounts), unmeasured",
    )
    ap.add_argument("--ab-packing", action="store_true", help="also ours without packing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "benchmark")
    args = ap.parse_args()
    if not TRACE.exists():
        print(f"trace absent: {TRACE}", file=sys.stderr)
        return 2
    catalog = load_catalog(CATALOG)
    predictor = Predictor(store=None)
    prices = {p.name: p.price_per_replica_hour_usd for p in catalog.profiles}
    baselines = args.baselines.split(",")
    base = rescale(
        load_traffic(TRACE, seed=args.seed),
        duration_s=args.duration,
        rate_scale=args.rate_scale,
        seed=args.seed,
    )
    window = args.duration if args.duration is not None else max(r.arrival_s for r in base)
    calibrate = args.calibrate if args.calibrate is not None else round(window / 2)
    measured = sum(r.arrival_s >= calibrate for r in base)
    print(f"calibration: first {calibrate:g} s; {measured} requests measured", flush=True)
    t0 = time.perf_counter()
    window_args = {"warmup_s" if args.replay_calibration else "calibrate_s": calibrate}
    ours = ["ours", *(["ours-before"] if args.ab else []),
            *(["ours-unpacked"] if args.ab_packing else [])]  # fmt: skip
    patches = {
        "ours-before": ("orchestrator.routing.decide._cheapest_upgrade", None),
        "ours-unpacked": ("orchestrator.routing.decide._packed", {}),
    }
    rows: dict[str, list[dict]] = {**{o: [] for o in ours}, **{b: [] for b in baselines}}
    tenants: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for share in [None, *(float(s) for s in args.shares.split(","))]:
            cat, policy = scale_limits(
                catalog, policy_with_share(share, Path(tmp)), args.rate_scale
            )
            for o in ours if share is not None else ["ours"]:
                patched = (
                    mock.patch(patches[o][0], return_value=patches[o][1])
                    if o in patches
                    else contextlib.nullcontext()
                )
                with patched:
                    res = simulate(
                        cat, policy, list(base), policies=["ours"], seed=args.seed,
                        predictor=predictor, **window_args,
                    )  # fmt: skip
                m = res.policies["ours"].metrics
                rows[o].append({"setting": share, **point(m, prices)})
                tenants[f"{o} {share}"] = {
                    k: v.get("quality_share") for k, v in m["slo_attainment_per_tenant"].items()
                }
                print(f"{o} share={share}: {json.dumps(rows[o][-1])}", flush=True)
        cat, policy = scale_limits(catalog, policy_with_share(None, Path(tmp)), args.rate_scale)
        for name in baselines:
            for t in (float(x) for x in args.thresholds.split(",")):
                res = simulate(
                    cat,
                    policy,
                    list(base),
                    policies=[name],
                    seed=args.seed,
                    predictor=predictor,
                    routellm_threshold=t,
                    **window_args,
                )
                rows[name].append({"setting": t, **point(res.policies[name].metrics, prices)})
                print(f"{name} t={t}: {json.dumps(rows[name][-1])}", flush=True)
    wall = time.perf_counter() - t0

    for o, name in ((o, name) for name in baselines for o in ours):
        print(f"\n| {o} share target | quality share | {o} $ | {name} $ at that share | ratio |")
        print("|---|---|---|---|---|")
        for p, other in matched(rows, name, o):
            ratio = f"{p['cost_usd'] / other:.2f}" if other else f"outside {name}'s range"
            shown = f"{other:.2f}" if other else "-"
            q = p["quality_share"]
            print(f"| {p['setting']} | {q:.4f} | {p['cost_usd']:.2f} | {shown} | {ratio} |")
    print("\nwhere the money goes (replica-hours x price per profile, USD):")
    for name, pts in rows.items():
        for p in pts:
            print(f"  {name} {p['setting']}: q {p['quality_share']:.3f} {p['cost_by_profile']}")
    print("\nper-tenant quality share (ours):", json.dumps(tenants, indent=1))
    print(
        f"\n{measured} requests measured after {calibrate:g} s"
        f"{' replayed' if args.replay_calibration else ' of calibration'}; wall {wall:.0f} s; {platform.processor() or platform.machine()}, "
        f"{platform.python_version()}; shared 2-core machine"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "quality_curve" if args.rate_scale == 1 else f"quality_curve_x{args.rate_scale:g}"
    if calibrate > 0:
        stem += f"_{'warm' if args.replay_calibration else 'cal'}{calibrate:g}"
    doc = {"rows": rows, "tenants": tenants, "calibrate_s": calibrate, "requests": measured,
           "replayed": args.replay_calibration}  # fmt: skip
    (args.out / f"{stem}.json").write_text(json.dumps({**doc, "command": sys.argv[1:]}))
    how = f"after a {calibrate:g} s {'warm-up' if args.replay_calibration else 'calibration'}"
    draw(rows, args.out / f"{stem}.png", measured, args.rate_scale, how if calibrate else "")
    return 0


def draw(rows: dict, path: Path, n: int, rate_scale: float, how: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, marker in zip(rows, "osD^v", strict=False):
        pts = sorted(rows[name], key=lambda p: p["quality_share"])
        ax.plot(
            [p["quality_share"] for p in pts],
            [p["cost_usd"] for p in pts],
            marker=marker,
            label=f"{name} ({'quality target' if name.startswith('ours') else 'threshold'} sweep)",
        )
        for p in pts:
            ax.annotate(str(p["setting"]), (p["quality_share"], p["cost_usd"]), fontsize=7)
    ax.set_xlabel("expected quality / always-strongest's (difficulty model)")
    ax.set_ylabel("cluster cost, USD")
    ax.set_title(
        f"Azure conversation trace x{rate_scale:g}, {n} requests measured"
        + (f" {how}" if how else "")
        + ", gpu-example catalog (simulated)",
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.text(0.01, 0.01, "simulated on a shared 2-core AMD EPYC, no GPU", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
