"""Traffic from a running orchestrator's decision log (replay your own traffic).

The decision log (`orchestrator.decisionlog`, docs/storage.md) holds one row per request: its
tenant, when it was decided, what the client asked (model, max_tokens) and the prediction the
server's predictor made. The usage ledger's row of the same request id, in the same database,
says what really happened (prompt and generated tokens). Each logged request becomes one
`SimRequest`:

- arrival: `decided_at` (the arrival to within the prediction's latency), from 0;
- tenant: the logged one; model and max_tokens: the client's;
- prediction: the logged one, used as is (it IS the product's predictor's output for that
  request, calibrated as it was then); a row without one gets text from the prompt pool and is
  predicted like an Azure request;
- true tokens: the ledger row's prompt and generated tokens; a request that never got a row
  (refused, or still running) replays with its predicted prompt and p50 answer, because a
  refused request is load the candidate policy may serve; `rows_without_usage` counts them;
- difficulty (the quality metric's need) is not logged: requests with a logged prediction
  need tier `small`, so quality compares nothing for them.

Reading opens the database read-write only to check schema versions (no write when both
stores exist); a database without a decision log is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.simulate.sim_request import SimRequest, finish

PLACEHOLDER_TEXT = "(replayed from the decision log: text not stored)"


@dataclass(frozen=True, slots=True)
class DecisionTrace:
    requests: list[SimRequest]
    rows_without_usage: int  # replayed with the predicted sizes


def is_decision_log(target: str | Path) -> bool:
    """A PostgreSQL URL, or a SQLite file holding the decision log's table."""
    from orchestrator.storage import current_version, is_postgres_url, open_database

    if is_postgres_url(str(target)):
        return True
    db = open_database(str(target), readonly=True)
    try:
        return current_version(db, "decisions") > 0
    finally:
        db.close()


def load_decision_log(
    target: str | Path,
    pool_factory: Any = None,
    *,
    seed: int = 0,
    since: datetime | None = None,
    until: datetime | None = None,
) -> DecisionTrace:
    """The logged requests in [since, until) as simulator traffic (see the module docstring).
    `pool_factory()` gives the prompt pool, needed only for rows without a logged prediction."""
    from orchestrator.decisionlog import DecisionLog
    from orchestrator.ledger import UsageLedger
    from orchestrator.storage import current_version, open_database

    db = open_database(str(target))
    try:
        if current_version(db, "decisions") == 0:
            raise ValueError(f"{target}: holds no decision log")
        entries = DecisionLog(db).entries(since=since, until=until)
        usage = {}
        if current_version(db, "ledger") > 0:
            usage = {r.request_id: r for r in UsageLedger(db, readonly=True).records()}
    finally:
        db.close()
    rng = np.random.default_rng(seed)
    pool = None
    rows: list[SimRequest] = []
    missing = 0
    for e in entries:
        inputs = e.inputs
        pred = inputs.prediction if inputs is not None else None
        used = usage.get(e.request_id)
        if used is not None and used.output_tokens >= 1:
            prompt, output = used.prompt_tokens, used.output_tokens
        elif pred is not None:
            prompt, output = pred.prompt_tokens, pred.p50_tokens
            missing += 1
        else:
            continue  # neither what happened nor what was expected: nothing to replay
        body: dict[str, Any] = {"model": (inputs.model if inputs else None) or "auto"}
        if inputs is not None and inputs.max_tokens:
            body["max_tokens"] = inputs.max_tokens
        tier, key = "small", ("decision-log", e.request_id)
        if pred is not None:
            body["messages"] = [{"role": "user", "content": PLACEHOLDER_TEXT}]
        else:
            if pool is None:
                from orchestrator.simulate.prompts import PromptPool

                pool = pool_factory() if pool_factory is not None else PromptPool(seed=seed)
            made = pool.body_for(prompt, rng)
            body["messages"], tier = made.body["messages"], made.tier
            key = ("decision-log", made.key, body["model"])  # a shared body, per model
        rows.append(
            SimRequest(
                0,
                e.decided_at.timestamp(),
                body,
                max(prompt, 1),
                max(output, 1),
                tenant=e.tenant,
                tier=tier,
                body_key=key,
                prediction=pred,
            )
        )
    return DecisionTrace(finish(rows), missing)
