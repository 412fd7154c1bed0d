"""One request of the simulated traffic (`SimRequest`), whatever source it was read from.

Invariants after `finish`: requests are sorted by `arrival_s`, which starts at 0, and `rid` is
the index.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(slots=True)
class SimRequest:
    """One request of the replayed traffic (all policies see the same list)."""

    rid: int
    arrival_s: float
    body: dict[str, Any]  # what the predictor reads (OpenAI chat body)
    prompt_tokens: int  # true prompt length (prefill work)
    output_tokens: int  # true generated tokens
    tenant: str = "default"
    tier: str = "small"  # quality tier the request's difficulty needs
    body_key: Any = None  # requests sharing a body share its prediction
    prediction: Any = None  # a recorded `Prediction` (decision log): used instead of predicting
    prefix_blocks: tuple = ()  # ids of its 512-token prefix blocks (Mooncake `hash_ids`)


def finish(rows: list[SimRequest]) -> list[SimRequest]:
    """Sort by arrival, start the clock at 0 and number the requests in order."""
    rows.sort(key=lambda r: r.arrival_s)
    t0 = rows[0].arrival_s if rows else 0.0
    for i, r in enumerate(rows):
        r.rid = i
        r.arrival_s -= t0
    return rows


def split_at(rows: list[SimRequest], at_s: float) -> tuple[list[SimRequest], list[SimRequest]]:
    """(those arriving before `at_s`, the rest), copies on a clock that starts at `at_s`: the
    rest numbered from 0 as `finish` leaves a trace, the earlier ones at negative times (a
    calibration window replayed before the measured one, `simulate(calibrate_s=...)`)."""
    before = [replace(r, arrival_s=r.arrival_s - at_s) for r in rows if r.arrival_s < at_s]
    after = [replace(r, arrival_s=r.arrival_s - at_s) for r in rows if r.arrival_s >= at_s]
    for i, r in enumerate(after):
        r.rid = i
    return before, after
