"""Where the ingress keeps its shared state: a SQLite file or a PostgreSQL database.

One setting names it: `--ledger` / the app arg `ledger` (a file path or a `postgresql://` URL),
else `$ORCHESTRATOR_DATABASE_URL` (how the chart passes a URL from a Secret), else the default
SQLite ledger (`orchestrator.ledger.default_ledger_path`).

Invariants:
- the explicit setting wins over the environment, the environment over the default;
- every log line and error message that names a target masks its password
  (`orchestrator.storage.target.redact`, the one home of target parsing);
- SQLite is one machine's file and budgets reserved in one process: more than one ingress
  replica on it is refused (`check_ingress_replicas`), with the reason and the way out.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.storage.target import backend, redact

DATABASE_URL_ENV = "ORCHESTRATOR_DATABASE_URL"
log = logging.getLogger("orchestrator.storage")


def resolve_target(
    explicit: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    state_dir: Path | str | None = None,
) -> str:
    """The ledger target in force: `explicit`, else $ORCHESTRATOR_DATABASE_URL, else the
    default SQLite ledger path (in `state_dir` when given)."""
    env = os.environ if environ is None else environ
    if explicit:
        return explicit
    from_env = env.get(DATABASE_URL_ENV, "").strip()
    if from_env:
        return from_env
    from orchestrator.ledger import default_ledger_path

    return str(default_ledger_path(state_dir))


def check_ingress_replicas(target: str, max_replicas: int) -> None:
    """ValueError when more than one ingress replica would share a SQLite ledger."""
    if max_replicas > 1 and backend(target) == "sqlite":
        raise ValueError(
            f"ingress max replicas {max_replicas} needs a shared ledger: the SQLite ledger "
            f"{redact(target)!r} is one machine's file and budget reservations would be "
            "counted per replica, so budgets could be overspent and decisions not found; "
            f"point --ledger (or ${DATABASE_URL_ENV}) at a postgresql:// URL, or keep one "
            "ingress replica"
        )


@dataclass(frozen=True)
class SharedState:
    """What the ingress keeps in the ledger's database, one `Database` for all of it."""

    ledger: Any  # orchestrator.ledger.UsageLedger: usage rows and budget holds
    decisions: Any  # orchestrator.decisionlog.DecisionLog
    responses: Any  # shared_responses.SharedResponseStore


def open_shared_state(target: str) -> SharedState:
    """Open (and migrate) the ledger, decision log and Responses store at `target`; logged
    with its password masked."""
    from orchestrator.decisionlog import DecisionLog
    from orchestrator.ledger import UsageLedger
    from orchestrator.serving.shared_responses import SharedResponseStore

    log.info("shared state: %s (%s)", redact(target), backend(target))
    ledger = UsageLedger(target)
    return SharedState(ledger, DecisionLog(ledger.db), SharedResponseStore(ledger.db))


def replica_name() -> str:
    """This Serve replica's id (for the `X-Orchestrator-Replica` header), else host:pid."""
    try:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # outside a Serve replica (tests)
        return f"{socket.gethostname()}:{os.getpid()}"
