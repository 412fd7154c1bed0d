"""`orchestrator profile measure`: a profile's performance figures, measured on its engine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.cli.output import CliError, check_output_file
from orchestrator.config_files import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "profile",
        help="measure a profile's performance figures on its real engine",
        description="Catalog profiles: measure their `performance:` figures.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    m = sub.add_parser(
        "measure",
        help="sweep batch sizes, prompt lengths and prefix reuse on the profile's vLLM engine",
        description=(
            "Start the profile's vLLM engine in this process (its engine arguments and replica "
            "environment, no Ray), sweep batch sizes, prompt and output lengths, with and "
            "without prefix reuse, and fit the `performance:` figures the router, the "
            "controller and the simulator read. Prints the figures as catalog YAML."
        ),
    )
    m.add_argument("--deployments", required=True, type=Path, help="catalog file")
    m.add_argument("--profile", required=True, help="profile name in the catalog")
    m.add_argument("--out", type=Path, default=None, help="write the YAML fragment here")
    m.add_argument(
        "--write",
        action="store_true",
        help="also replace the profile's performance block in the catalog file",
    )
    m.add_argument("--quick", action="store_true", help="a tiny sweep (smoke test, ~1 minute)")
    m.set_defaults(func=run_measure)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_measure(args: argparse.Namespace) -> int:
    from orchestrator.catalog import load_catalog
    from orchestrator.profiling.fit import FitError
    from orchestrator.profiling.measure import (
        describe,
        machine,
        measure_profile,
        performance_yaml,
        replace_performance,
    )

    try:
        catalog = load_catalog(args.deployments)
        profile = catalog.profile(args.profile)
    except ConfigError as exc:
        print(f"orchestrator profile measure: {exc}", file=sys.stderr)
        return 1
    except KeyError:
        names = ", ".join(p.name for p in catalog.profiles)
        print(
            f"orchestrator profile measure: no profile {args.profile!r} (catalog: {names})",
            file=sys.stderr,
        )
        return 1
    try:
        check_output_file(args.out, "--out")  # before minutes of measuring
    except CliError as exc:
        print(f"orchestrator profile measure: {exc}", file=sys.stderr)
        return 2
    print(f"measuring {profile.name} ({profile.model}) on {machine()}", file=sys.stderr)

    def progress(i, n, step, result) -> None:
        print(
            f"[{i}/{n}] {step.label()}: {describe(result)} ({result.wall_s:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    try:
        report, _ = measure_profile(profile, quick=args.quick, progress=progress)
    except FitError as exc:
        print(f"orchestrator profile measure: {exc}", file=sys.stderr)
        return 1
    text = performance_yaml(profile, report)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.write:
        source = args.deployments.read_text(encoding="utf-8")
        args.deployments.write_text(
            replace_performance(source, profile.name, report.performance), encoding="utf-8"
        )
        print(f"updated {profile.name} in {args.deployments}", file=sys.stderr)
    return 0
