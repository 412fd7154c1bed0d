"""`orchestrator render`: print the KubeRay RayService the Helm chart installs.

Exit codes: 0 success; 1 an input file is invalid (each problem as `file:line: field: reason`
on stderr). Warnings (e.g. policy key references the cluster cannot resolve) go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.cli.output import write_output
from orchestrator.config_files import ConfigError
from orchestrator.deploy import chart_values_fragment, dump_yaml, load_inputs, render_rayservice
from orchestrator.deploy.names import CHART_NAME
from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY


def _run(args: argparse.Namespace) -> int:
    try:
        inputs = load_inputs(args.deployments, args.policy, args.values)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    for warning in inputs.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.chart_values:
        text = (
            "# Chart values for this catalog and policy: helm install ... -f THIS_FILE\n"
            + dump_yaml(chart_values_fragment(inputs))
        )
    else:
        obj = render_rayservice(inputs, release=args.release, namespace=args.namespace)
        text = dump_yaml(obj)
    write_output(text, args.output)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="print the KubeRay RayService (or chart values) for a catalog and policy",
        description=(
            "Print the RayService that `helm install` of helm/orchestrator creates for this "
            "catalog, policy and values file (the same object: tests compare them). With "
            "--chart-values, print the values that make the chart ship this catalog and policy."
        ),
    )
    p.add_argument(
        "--deployments", type=Path, default=DEFAULT_DEPLOYMENTS, help="profile catalog YAML"
    )
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="policy YAML")
    p.add_argument(
        "--values", type=Path, default=None, help="chart values file (as for helm install -f)"
    )
    p.add_argument("--namespace", default=None, help="metadata.namespace of the RayService")
    p.add_argument(
        "--release", default=CHART_NAME, help=f"Helm release name (default {CHART_NAME})"
    )
    p.add_argument(
        "--chart-values",
        action="store_true",
        help="print chart values (catalog, policy, generated worker groups) instead",
    )
    p.add_argument("-o", "--output", default=None, help="write to this file instead of stdout")
    p.set_defaults(func=_run)
