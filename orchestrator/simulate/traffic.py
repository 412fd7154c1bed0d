"""Traffic for the simulator: requests with arrival times, real text and true sizes.

Sources (`load_traffic` picks by file content):
- Azure LLM inference trace CSV (`TIMESTAMP,ContextTokens,GeneratedTokens`): each request
  gets a real prompt of similar length from the shared prompt sets (`prompts.PromptPool`);
- JSONL, one request per line: `arrival_s`, `messages` (or `prompt`), `output_tokens`, and
  optionally `prompt_tokens` (else the text's count), `tenant`, `tier` (needed quality);
- Mooncake trace JSONL (`timestamp` ms, `input_length`, `output_length`, `hash_ids`: ids of
  the prompt's 512-token prefix blocks, equal ids = reusable KV), told apart from our JSONL by
  its fields: text as for Azure; the blocks go to the simulator's prefix caches
  (`SimRequest.prefix_blocks`) and to its replica choice (prefix affinity);
- a usage ledger (SQLite, `orchestrator serve --ledger`): started_at, tenant, prompt and
  output tokens of every finished request; text as for Azure;
- a decision log (a SQLite file holding one, or a `postgresql://` URL): the logged requests
  with their predictions, joined with the ledger's true tokens (`decision_trace.py`).

Invariants: requests are sorted by `arrival_s`, which starts at 0; `rid` is the index;
`output_tokens >= 1`. Rate scaling keeps the trace's shape: x2.5 emits each request 2 or 3
times (spread over the gap to the next arrival), x0.5 keeps every other one on average.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.simulate.decision_trace import is_decision_log, load_decision_log
from orchestrator.simulate.prompts import PromptPool
from orchestrator.simulate.sim_request import SimRequest, finish


def _parse_ts(text: str) -> float:
    text = text.strip()
    if "." in text:  # the trace has 7 fractional digits; datetime takes 6
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(text).timestamp()


def read_azure(path: Path | str) -> Iterator[tuple[float, int, int]]:
    """(arrival time in epoch seconds, context tokens, generated tokens) per trace row."""
    with Path(path).open(encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            yield (
                _parse_ts(rec["TIMESTAMP"]),
                int(rec["ContextTokens"]),
                int(rec["GeneratedTokens"]),
            )


def load_azure(path: Path, pool: PromptPool, *, seed: int = 0) -> list[SimRequest]:
    rng = np.random.default_rng(seed)
    rows: list[SimRequest] = []
    for at, ctx, out in read_azure(path):
        body = pool.body_for(ctx, rng)
        rows.append(
            SimRequest(
                0,
                at,
                body.body,
                max(ctx, 1),
                max(out, 1),
                tier=body.tier,
                body_key=body.key,
            )
        )
    return finish(rows)


def _content_key(body: dict[str, Any]) -> bytes:
    """Equal bodies share one key (the predictor featurizes each distinct body once)."""
    text = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def load_jsonl(path: Path) -> list[SimRequest]:
    rows: list[SimRequest] = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            d = json.loads(line)
            try:
                if "messages" in d:
                    body = {"model": d.get("model", "auto"), "messages": d["messages"]}
                else:
                    body = {
                        "model": d.get("model", "auto"),
                        "messages": [{"role": "user", "content": d["prompt"]}],
                    }
                out = int(d["output_tokens"])
                arrival = float(d["arrival_s"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"{path}:{n}: needs arrival_s, messages|prompt, output_tokens ({exc})"
                ) from None
            prompt_tokens = d.get("prompt_tokens")
            rows.append(
                SimRequest(
                    0,
                    arrival,
                    body,
                    int(prompt_tokens) if prompt_tokens else -1,
                    max(out, 1),
                    tenant=d.get("tenant", "default"),
                    tier=d.get("tier", "small"),
                    body_key=_content_key(body),
                )
            )
    return finish(rows)


MOONCAKE_FIELDS = frozenset({"timestamp", "input_length", "output_length", "hash_ids"})


def load_mooncake(path: Path, pool: PromptPool, *, seed: int = 0) -> list[SimRequest]:
    """A Mooncake-format trace (see the module docstring); every line must carry the four
    fields (a line without them is an error naming the line)."""
    rng = np.random.default_rng(seed)
    rows: list[SimRequest] = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                arrival = float(d["timestamp"]) / 1000.0
                ctx, out = int(d["input_length"]), int(d["output_length"])
                blocks = tuple(int(b) for b in d["hash_ids"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"{path}:{n}: a Mooncake line needs timestamp, input_length, "
                    f"output_length, hash_ids ({exc})"
                ) from None
            body = pool.body_for(ctx, rng)
            rows.append(
                SimRequest(
                    0,
                    arrival,
                    body.body,
                    max(ctx, 1),
                    max(out, 1),
                    tier=body.tier,
                    body_key=body.key,
                    prefix_blocks=blocks,
                )  # fmt: skip
            )
    return finish(rows)


def load_ledger(path: Path, pool: PromptPool, *, seed: int = 0) -> list[SimRequest]:
    """Replay a running orchestrator's own traffic (finished requests of its usage ledger)."""
    from orchestrator.ledger.store import UsageLedger

    rng = np.random.default_rng(seed)
    ledger = UsageLedger(path, readonly=True)
    try:
        records = ledger.records()
    finally:
        ledger.close()
    rows = []
    for r in records:
        if r.status == "rejected" or r.output_tokens < 1:
            continue
        body = pool.body_for(r.prompt_tokens, rng)
        rows.append(
            SimRequest(
                0,
                r.started_at.timestamp(),
                body.body,
                max(r.prompt_tokens, 1),
                r.output_tokens,
                tenant=r.tenant,
                tier=body.tier,
                body_key=body.key,
            )
        )
    return finish(rows)


def sniff(path: Path | str) -> str:
    """'azure', 'jsonl', 'mooncake', 'ledger' or 'decisions' from the URL or the file's first
    bytes (a JSONL whose first record has Mooncake's fields is 'mooncake')."""
    if str(path).startswith(("postgresql://", "postgres://")):
        return "decisions"
    with Path(path).open("rb") as f:
        head = f.read(64)
    if head.startswith(b"SQLite format 3"):
        return "decisions" if is_decision_log(path) else "ledger"
    if head.lstrip().startswith(b"{"):
        with Path(path).open(encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        try:
            keys = set(json.loads(first))
        except (ValueError, TypeError):
            return "jsonl"  # its loader names the bad line
        return "mooncake" if keys >= MOONCAKE_FIELDS else "jsonl"
    if head.upper().startswith(b"TIMESTAMP"):
        return "azure"
    raise ValueError(
        f"{path}: not an Azure trace CSV, a JSONL of requests, a Mooncake trace, a usage "
        "ledger or a decision log"
    )


def load_traffic(path: Path | str, pool_factory: Any = None, *, seed: int = 0) -> list[SimRequest]:
    """Load any supported source; `pool_factory()` gives the PromptPool when one is needed."""
    kind = sniff(path)
    if kind == "jsonl":
        return load_jsonl(Path(path))
    if kind == "decisions":
        return load_decision_log(path, pool_factory, seed=seed).requests
    pool = pool_factory() if pool_factory is not None else PromptPool(seed=seed)
    if kind == "mooncake":
        return load_mooncake(Path(path), pool, seed=seed)
    try:
        return (
            load_azure(path, pool, seed=seed)
            if kind == "azure"
            else load_ledger(path, pool, seed=seed)
        )
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path}: unreadable ledger ({exc})") from None


def scale_arrivals(
    times: Sequence[float], rate_scale: float, *, seed: int = 0
) -> list[tuple[int, float]]:
    """The arrivals at `rate_scale` times the rate, keeping the trace's shape: (index of the
    original arrival, new time) pairs, unsorted; each arrival is emitted `int(rate_scale)`
    times, once more with probability of the fraction, the copies spread over the gap to the
    next arrival (the first at its own time). `times` sorted ascending."""
    if rate_scale <= 0:
        raise ValueError("rate_scale must be > 0")
    rng = np.random.default_rng([seed, 7])
    out: list[tuple[int, float]] = []
    end = times[-1] if len(times) else 0.0
    for i, at in enumerate(times):
        gap = (times[i + 1] if i + 1 < len(times) else end + 1.0) - at
        copies = int(rate_scale) + (1 if rng.random() < rate_scale - int(rate_scale) else 0)
        for c in range(copies):
            out.append((i, at + (gap * rng.random() if c else 0.0)))
    return out


def rescale(
    requests: list[SimRequest],
    *,
    rate_scale: float = 1.0,
    duration_s: float | None = None,
    seed: int = 0,
) -> list[SimRequest]:
    """Cut to the first `duration_s` seconds, then multiply the arrival rate by `rate_scale`
    (`scale_arrivals`)."""
    if rate_scale <= 0:
        raise ValueError("rate_scale must be > 0")
    rows = [r for r in requests if duration_s is None or r.arrival_s < duration_s]
    if rate_scale == 1.0:
        return [replace(r) for r in rows]
    scaled = scale_arrivals([r.arrival_s for r in rows], rate_scale, seed=seed)
    return finish([replace(rows[i], arrival_s=at) for i, at in scaled])
