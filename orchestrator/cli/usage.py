"""`orchestrator usage`: spend per tenant and profile from the usage ledger."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.ledger import (
    LEDGER_ENV,
    LEDGER_FILENAME,
    LedgerError,
    UsageLedger,
    UsageSummary,
    parse_time,
)
from orchestrator.serving.storage_target import DATABASE_URL_ENV, resolve_target
from orchestrator.storage import backend, redact
from orchestrator.storage.target import sqlite_path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "usage",
        help="print spend per tenant and profile from the usage ledger",
        description=(
            "Print requests, tokens and cost per tenant and profile from the usage ledger "
            "the server writes (the one --ledger names)."
        ),
    )
    p.add_argument(
        "--ledger",
        default=None,
        help=f"a SQLite file or a postgresql:// URL; default, as the server: "
        f"${DATABASE_URL_ENV}, else the SQLite file ${LEDGER_ENV}, else the state "
        f"directory's {LEDGER_FILENAME}",
    )
    p.add_argument("--since", default=None, help="e.g. 24h, 7d, 30m or 2026-01-31[T12:00]")
    p.add_argument("--until", default=None, help="same forms as --since")
    p.add_argument("--tenant", default=None, help="only this tenant")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, *, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    path = resolve_target(args.ledger)
    shown = redact(path)
    try:
        kind = backend(path)
    except ValueError as exc:
        print(f"orchestrator usage: {exc}", file=sys.stderr)
        return 2
    try:
        since = parse_time(args.since, now) if args.since else None
        until = parse_time(args.until, now) if args.until else None
    except ValueError as exc:
        print(f"orchestrator usage: {exc}", file=sys.stderr)
        return 2
    if (
        kind == "sqlite" and not Path(sqlite_path(path)).is_file()
    ):  # nothing served yet: nothing spent
        print(f"orchestrator usage: no ledger at {shown} yet", file=sys.stderr)
        rows: list[UsageSummary] = []
    else:
        try:
            rows = _read(path, args.tenant, since, until)
        except (LedgerError, OSError) as exc:
            print(f"orchestrator usage: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # sqlite3.DatabaseError and friends: not a ledger
            print(f"orchestrator usage: cannot read {shown}: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    else:
        print(render_table(rows, since=since, until=until, path=shown))
    return 0


def _read(
    path: str, tenant: str | None, since: datetime | None, until: datetime | None
) -> list[UsageSummary]:
    with UsageLedger(path, readonly=True) as ledger:
        return ledger.summary(tenant=tenant, since=since, until=until)


_HEADER = (
    "tenant",
    "profile",
    "requests",
    "failed",
    "prompt",
    "cached",
    "output",
    "reasoning",
    "cost_usd",
)


def render_table(
    rows: list[UsageSummary],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    path: str | Path | None = None,
) -> str:
    """A plain-text table: one line per (tenant, profile), a subtotal per tenant, a total."""
    span = f"{since.isoformat() if since else 'start'} .. {until.isoformat() if until else 'now'}"
    lines = [f"usage from {path} ({span})" if path else f"usage ({span})"]
    if not rows:
        lines.append("no requests recorded")
        return "\n".join(lines)
    table: list[tuple[str, ...]] = [_HEADER]
    tenants: dict[str, list[UsageSummary]] = {}
    for r in rows:
        tenants.setdefault(r.tenant, []).append(r)
    for tenant, group in tenants.items():
        for r in group:
            table.append(_cells(tenant, r.profile or "(not routed)", [r]))
        if len(group) > 1:
            table.append(_cells(tenant, "(all)", group))
    if len(tenants) > 1:
        table.append(_cells("TOTAL", "", rows))
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
    for row in table:
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _cells(tenant: str, profile: str, group: list[UsageSummary]) -> tuple[str, ...]:
    return (
        tenant,
        profile,
        str(sum(r.requests for r in group)),
        str(sum(r.failed for r in group)),
        str(sum(r.prompt_tokens for r in group)),
        str(sum(r.cached_tokens for r in group)),
        str(sum(r.output_tokens for r in group)),
        str(sum(r.reasoning_tokens for r in group)),
        f"{sum(r.cost_usd for r in group):.6f}",
    )
