"""`orchestrator plan`: what the controller would do for a given demand, without a cluster."""

from __future__ import annotations

import argparse
import json
import sys

from orchestrator.config_files import ConfigError, load_yaml_file, validate_loaded
from orchestrator.planning import ScalingDecision, ScalingTickState, plan
from orchestrator.planning.demand import DemandFile, observation, unknown_names
from orchestrator.policy.loader import load_policy_for_cli


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "plan",
        help="print the replica targets the controller would set for a given demand",
        description=(
            "Run the controller's planner on a demand file (one tick or a timeline) against a "
            "catalog and policy, and print each profile's replicas now, the target, the "
            "cheapest mix it converges to (ideal) and the reason. No cluster is needed."
        ),
    )
    p.add_argument("--policy", required=True, help="policy file")
    p.add_argument(
        "--deployments", default=None, help="catalog (default: the policy's `catalog:` hint)"
    )
    p.add_argument("--demand", required=True, help="demand file (see docs/controller.md)")
    p.add_argument("--json", action="store_true", help="print the decisions as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy_for_cli(args.policy, args.deployments)
        demand = validate_loaded(DemandFile, load_yaml_file(args.demand))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    catalog = policy.catalog
    bad = unknown_names(demand, catalog)
    if bad:
        print(f"{args.demand}: not in the catalog: {', '.join(bad)}", file=sys.stderr)
        return 1
    # The start is what `serve` and the simulator deploy: the policy's initial replicas.
    replicas = {p.name: policy.scaling[p.name].initial_replicas for p in catalog.profiles}
    state = ScalingTickState()
    decisions: list[ScalingDecision] = []
    for step in demand.all_steps():
        try:
            obs = observation(step, catalog, replicas, demand.resources_available)
        except ValueError as exc:
            print(f"{args.demand}: {exc}", file=sys.stderr)
            return 1
        decision, state = plan(obs, policy, state)
        decisions.append(decision)
        replicas = {n: t.target for n, t in decision.targets.items()}
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in decisions], indent=2))
    else:
        print("\n\n".join(render(d) for d in decisions))
    return 0


def render(decision: ScalingDecision) -> str:
    """A decision as a small table: one line per profile (its share of the family's forecast
    load in `load`), then one line per family with load it cannot place and why."""
    ceiling = decision.ceiling_usd_per_hour
    head = f"t={decision.now_s:g}s  ${decision.cost_per_hour_usd:,.2f}/hour"
    if ceiling is not None:
        head += f" (ceiling ${ceiling:,.2f}"
        head += ", binding)" if decision.ceiling_binding else ", not binding)"
    head += f"  solver: {decision.solver}"
    rows = [("profile", "now", "target", "ideal", "load", "$/hour", "reason")]
    for t in decision.targets.values():
        load = f"{t.assigned_share:.0%}" if t.assigned_share > 0 else "-"
        cost = f"{t.cost_per_hour_usd:,.2f}"
        rows.append((t.profile, str(t.current), str(t.target), str(t.ideal), load, cost, t.reason))
    for u in decision.unplaced.values():
        limits = ", ".join(u.limited_by) or "unknown"
        rows.append(
            (f"UNPLACED {u.family}", "", "", f"+{u.replicas:.1f}", f"{u.share:.0%}", "",
             f"limited by {limits}: {u.detail}"),
        )  # fmt: skip
    n = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(n)]
    lines = [head]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, n)]
        lines.append("  " + "  ".join(cells) + "  " + r[n])
    lines += [f"ALERT: {a}" for a in decision.alerts]
    return "\n".join(lines)
