"""Relay a profile engine's SSE stream to the client, and account for what it carried.

The engine is always asked for usage, final and per chunk (`openai_io.engine_stream_options`);
the relay shows the client only what it asked for, renames the model to the one it asked for,
and adds `usage.cost_usd` to the final usage chunk.

Invariants:
- the request is settled exactly once (`RequestSettlement`): with the engine's final usage
  (status `ok`), or, when the stream ends without it (client disconnect, cancellation, engine
  failure), with the tokens counted so far (`StreamTally`) and status `cancelled`;
- a stream cut short cancels its engine request, so the engine stops generating tokens that
  nobody receives and nobody is charged for;
- every relayed event is one complete `data: ...\\n\\n` event; `[DONE]` ends every stream that
  ran to completion.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.ledger import Status
from orchestrator.serving import openai_io
from orchestrator.serving.accounting import (
    EngineUsage,
    RequestSettlement,
    RequestTrace,
    StreamTally,
)

log = logging.getLogger("orchestrator.ingress")

DONE_EVENT = "data: [DONE]\n\n"


def sse_events(packet: Any) -> list[str]:
    """The SSE events in one item of a profile's response stream (a string of one or more
    events, a list of those when Serve batches them, or a response model)."""
    if isinstance(packet, list):
        out: list[str] = []
        for item in packet:
            out.extend(sse_events(item))
        return out
    if isinstance(packet, str):
        return openai_io.split_sse(packet)
    if hasattr(packet, "model_dump_json"):
        return [f"data: {packet.model_dump_json()}\n\n"]
    return [f"data: {packet}\n\n"]


def _cancel(gen: Any) -> None:
    """Best effort: stop the engine request behind `gen` (a Serve response generator)."""
    cancel = getattr(gen, "cancel", None)
    if cancel is None:
        return
    with contextlib.suppress(Exception):
        cancel()


async def relay_stream(
    first: Any,
    gen: Any,
    settlement: RequestSettlement,
    trace: RequestTrace,
    *,
    engine_model: str,
    shown_model: str,
    wants_usage: bool,
    wants_continuous_usage: bool,
    prompt_tokens: int,
) -> AsyncIterator[str]:
    """Relay `first` and then the rest of `gen` (an async iterator of stream packets).

    `wants_usage` / `wants_continuous_usage`: what the client's own `stream_options` asked
    for; `prompt_tokens`: what to charge for the prompt if the engine never said.
    """
    engine_model_json = f'"model":"{engine_model}"'
    shown_model_json = f'"model":"{shown_model}"'
    tally = StreamTally()
    status: Status = "cancelled"
    done_sent = False
    try:
        packet = first
        while True:
            for event in sse_events(packet):
                if event.startswith("data: [DONE]"):
                    done_sent = True
                    yield event
                    continue
                trace.mark_first_token()
                chunk = openai_io.sse_json(event)
                if chunk is None:  # not JSON we understand: relay as it came
                    yield event.replace(engine_model_json, shown_model_json, 1)
                    continue
                tally.add(chunk)
                usage = chunk.get("usage")
                if chunk.get("choices") == [] and isinstance(usage, dict):  # final usage chunk
                    cost = await settlement.settle(EngineUsage.from_openai(usage))
                    if wants_usage:
                        usage["cost_usd"] = round(cost, 10)
                        chunk["model"] = shown_model
                        yield openai_io.sse_event(chunk)
                    continue
                if usage is not None and not wants_continuous_usage:
                    del chunk["usage"]  # per-chunk usage was our request, not the client's
                    chunk["model"] = shown_model
                    yield openai_io.sse_event(chunk)
                    continue
                yield event.replace(engine_model_json, shown_model_json, 1)
            try:
                packet = await gen.__anext__()
            except StopAsyncIteration:
                break
        status = "ok"
        if not done_sent:
            yield DONE_EVENT
    finally:
        # a stream cut short (client gone: GeneratorExit at a yield, or CancelledError while
        # waiting for the engine; or an engine error) is charged for what it carried
        if status != "ok" and not settlement.settled:
            _cancel(gen)
            log.info(
                "stream ended early",
                extra={"request_id": trace.request_id, "profile": trace.profile},
            )
        await settlement.settle(tally.usage(prompt_tokens), status)
