"""`orchestrator policy validate|explain|diff|schema`.

Exit codes: 0 success; 1 invalid policy (or, for `diff --exit-code`, differences; or, for
`validate --strict`, warnings); 2 bad usage. Errors print as `file:line: field: reason`,
warnings as `file:line: field: warning: reason`, one per line, on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from orchestrator.catalog import Catalog
from orchestrator.cli.output import write_output
from orchestrator.config_files import ConfigError, ConfigIssue
from orchestrator.policy.diff import diff_policies, render_diff
from orchestrator.policy.explain import explain_policy, render_text
from orchestrator.policy.loader import (
    build_policy,
    catalog_for,
    catalog_path_for,
    content_version,
    load_policy_for_cli,
    read_policy,
)
from orchestrator.policy.model import Policy
from orchestrator.policy.schema import policy_json_schema

YAML_SUFFIXES = (".yaml", ".yml")


def expand_paths(paths: list[str]) -> tuple[list[Path], list[ConfigIssue]]:
    """Files as given; directories become their *.yaml / *.yml files (not recursive)."""
    files: list[Path] = []
    issues: list[ConfigIssue] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.is_file() and c.suffix in YAML_SUFFIXES)
            if not found:
                issues.append(
                    ConfigIssue(str(p), 1, "<dir>", "no *.yaml or *.yml files in this directory")
                )
            files += found
        else:
            files.append(p)
    return files, issues


def sorted_issues(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """Grouped by file (in order of first appearance), by line within a file."""
    order = {f: i for i, f in reversed(list(enumerate(i.file for i in issues)))}
    return sorted(issues, key=lambda i: (order[i.file], i.line))


def _validate(args: argparse.Namespace) -> int:
    files, issues = expand_paths(args.paths)
    warnings: list[ConfigIssue] = []
    catalogs: dict[str, Catalog | None] = {}
    ok = 0
    for f in files:
        try:
            text, loaded, spec = read_policy(f)
            cat_path = os.path.normpath(catalog_path_for(f, spec, args.deployments))
            if cat_path not in catalogs:
                try:
                    catalogs[cat_path] = catalog_for(f, spec, loaded, args.deployments)[1]
                except ConfigError as exc:
                    catalogs[cat_path] = None
                    issues += exc.issues
                    if exc.issues[0].file == str(f):  # the hint itself is wrong: said once
                        continue
            catalog = catalogs[cat_path]
            if catalog is None:
                line = loaded.line_of(("catalog",)) if spec.catalog else 1
                reason = f"catalog {cat_path} could not be loaded (see above)"
                issues.append(ConfigIssue(str(f), line, "catalog", reason))
                continue
            policy = build_policy(
                spec,
                catalog,
                loaded,
                version=content_version(text),
                resolve_secrets=args.check_secrets,
            )
        except ConfigError as exc:
            issues += exc.issues
            continue
        ok += 1
        warnings += policy.warnings
        if not args.quiet:
            n = len(policy.reachable_tenants())
            print(f"{f}: ok (catalog {cat_path}; {n} reachable tenant{'s' if n != 1 else ''})")
    for issue in sorted_issues(issues):
        print(issue)
    for warning in sorted_issues(warnings):
        print(f"{warning.file}:{warning.line}: {warning.field}: warning: {warning.reason}")
    if issues:
        bad = len(files) - ok
        print(f"{len(issues)} error(s); {bad} of {len(files)} file(s) invalid", file=sys.stderr)
        return 1
    if warnings and args.strict:
        print(f"{len(warnings)} warning(s), failing under --strict", file=sys.stderr)
        return 1
    return 0


def _load(path: str, deployments: str | None) -> Policy | None:
    try:
        return load_policy_for_cli(path, deployments)
    except ConfigError as exc:
        for issue in sorted_issues(exc.issues):
            print(issue)
        return None


def _explain(args: argparse.Namespace) -> int:
    policy = _load(args.file, args.deployments)
    if policy is None:
        return 1
    exp = explain_policy(policy)
    if args.json:
        print(json.dumps(exp.as_dict(), indent=2, default=str))
    else:
        print(render_text(exp))
    for w in policy.warnings:  # the same warnings `validate` prints
        print(f"{w.file}:{w.line}: {w.field}: warning: {w.reason}", file=sys.stderr)
    return 0


def _diff(args: argparse.Namespace) -> int:
    old = _load(args.old, args.deployments)
    new = _load(args.new, args.deployments)
    if old is None or new is None:
        return 1
    changes = diff_policies(old, new)
    print(render_diff(changes))
    return 1 if args.exit_code and changes else 0


def _schema(args: argparse.Namespace) -> int:
    text = json.dumps(policy_json_schema(), indent=2) + "\n"
    write_output(text, args.output)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="validate, explain and compare policy files",
        description="Policy files: the SRE's contract for cost, budgets, SLOs and scaling.",
    )
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    deployments_help = "catalog to check against (default: each file's `catalog:` hint, else deployments/local.yaml)"

    v = sub.add_parser(
        "validate", help="check policy files; print every error as file:line: field: reason"
    )
    v.add_argument(
        "paths", nargs="+", metavar="FILE_OR_DIR", help="policy files or directories of them"
    )
    v.add_argument("--deployments", metavar="FILE", help=deployments_help)
    v.add_argument(
        "--check-secrets",
        action="store_true",
        help="also read the API key env vars / files (default: structure only, for CI)",
    )
    v.add_argument("-q", "--quiet", action="store_true", help="print errors and warnings only")
    v.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) on warnings too, e.g. always-on replicas no tenant may use",
    )
    v.set_defaults(func=_validate)

    e = sub.add_parser("explain", help="per tenant: profiles, prices, cheapest way to meet the SLO")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--deployments", metavar="FILE", help=deployments_help)
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=_explain)

    d = sub.add_parser("diff", help="what would change, for whom, between two policies")
    d.add_argument("old", metavar="OLD")
    d.add_argument("new", metavar="NEW")
    d.add_argument("--deployments", metavar="FILE", help=deployments_help + " (both files)")
    d.add_argument("--exit-code", action="store_true", help="exit 1 when there are differences")
    d.set_defaults(func=_diff)

    s = sub.add_parser("schema", help="print the policy JSON Schema")
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    s.set_defaults(func=_schema)
