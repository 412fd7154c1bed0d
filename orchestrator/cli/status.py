"""`orchestrator status`: the running server's replicas, the controller's targets and reasons."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx

URL_ENV = "ORCHESTRATOR_URL"
DEFAULT_URL = "http://127.0.0.1:8000"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "status",
        help="print replicas running / target per profile, the controller's reasons and spend",
        description=(
            "Ask a running server (GET /v1/orchestrator/status) for each profile's replicas, "
            "the controller's target and reason, utilisation, measured TTFT/TPOT p95, the "
            "router's live latency scales (observed / modelled TTFT/TPOT) and the "
            f"spend rate. The server is --url, else ${URL_ENV}, else {DEFAULT_URL}."
        ),
    )
    p.add_argument("--url", default=None, help="server base URL")
    p.add_argument("--json", action="store_true", help="print the status document as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    base = (args.url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    try:
        r = httpx.get(f"{base}/v1/orchestrator/status", timeout=10)
        r.raise_for_status()
        doc = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"orchestrator status: cannot read {base}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=2) if args.json else render(doc))
    return 0


def _ms(p: dict[str, Any] | None) -> str:
    v = (p or {}).get("p95")
    return "-" if v is None else f"{v:.0f}"


def _scales(p: dict[str, Any]) -> str:
    """The router's live TTFT/TPOT scales (observed / modelled), '-' where none is fresh."""
    scale = p.get("latency_scale") or {}
    parts = [scale.get(k) for k in ("ttft", "tpot")]
    if all(v is None for v in parts):
        return "-"
    return "/".join("-" if v is None else f"{v:.2f}" for v in parts)


def _reason(p: dict[str, Any]) -> str:
    """The controller's reason, unless the cluster cannot host the profile (that comes first)."""
    placement = p.get("placement") or {}
    if placement.get("state") == "unplaceable":
        return str(placement.get("reason"))
    return p.get("reason") or "(no plan yet)"


def _queues(queues: dict[str, Any]) -> list[str]:
    """The ingress queue per profile: batch slots taken, and per tenant what waits."""
    out = []
    for profile, q in sorted(queues.items()):
        tenants = ", ".join(
            f"{t} {int(r['queued'])} (priority {int(r['priority'])}, oldest {r['oldest_wait_s']:.1f} s)"
            for t, r in sorted(q.get("tenants", {}).items())
        )
        out.append(
            f"queue {profile}: {q.get('busy', 0)} in batch slots, {q.get('waiting', 0)} waiting"
            + (f": {tenants}" if tenants else "")
        )
    return out


def render(doc: dict[str, Any]) -> str:
    """The status document as a table (one line per profile) plus the controller summary."""
    ctl = doc.get("controller") or {}
    targets = ctl.get("targets", {})
    observed = (ctl.get("observation") or {}).get("profiles", {})
    rows = [
        ("profile", "running", "target", "util", "ttft95", "tpot95", "scale", "$/h spend", "reason")
    ]
    for name, p in doc.get("profiles", {}).items():
        t = targets.get(name, {})
        o = observed.get(name, {})
        rows.append(
            (
                name,
                str(p.get("replicas_running", "-")),
                str(p.get("replicas_target") if p.get("replicas_target") is not None else "-"),
                f"{t['utilisation']:.0%}" if "utilisation" in t else "-",
                _ms(o.get("ttft_ms")),
                _ms(o.get("tpot_ms")),
                _scales(p),
                f"{o.get('spend_usd_per_hour', 0.0):.4f}",
                _reason(p),
            )
        )
    last = len(rows[0]) - 1  # the reason, left as it is
    widths = [max(len(r[i]) for r in rows) for i in range(last)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, last)]
        lines.append("  ".join(cells) + "  " + r[last])
    lines += _queues(doc.get("queues") or {})
    if ctl:
        ceiling = ctl.get("ceiling_usd_per_hour")
        summary = f"replicas cost ${ctl.get('cost_per_hour_usd', 0.0):,.2f}/hour"
        if ceiling is not None:
            summary += (
                f" (ceiling ${ceiling:,.2f}{', BINDING' if ctl.get('ceiling_binding') else ''})"
            )
        summary += f"; token spend ${ctl.get('spend_usd_per_hour', 0.0):,.4f}/hour"
        lines.append(summary)
        lines += [f"ALERT: {a}" for a in ctl.get("alerts", [])]
    else:
        lines.append("controller: no decision published yet")
    return "\n".join(lines)
