"""Relay a profile engine's SSE stream to the client, and account for what it carried.

The engine is always asked for the final usage, and per chunk for usage or, for a stream that
may migrate, token ids (`openai_io.engine_stream_options`);
the relay shows the client only what it asked for, renames the model to the one it asked for,
and adds `usage.cost_usd` to the final usage chunk.

Invariants:
- the request is settled exactly once (`RequestSettlement`): with the engine's final usage
  (status `ok`), or, when the stream ends without it (client disconnect, cancellation, engine
  failure), with the tokens counted so far (`StreamTally`) and status `cancelled`;
- a stream cut short cancels its engine request, so the engine stops generating tokens that
  nobody receives and nobody is charged for;
- every relayed item is one or more complete `data: ...\\n\\n` events: the events of one engine
  packet (Serve batches them) are written together, so the ingress sends the proxy no more
  messages than the engine sent it; `[DONE]` ends every stream that ran to completion;
- an engine that fails mid-stream (an exception, or an error event) is never relayed as is:
  the stream is carried to another engine (`StreamFailover`, see `failover.py`) and settled
  as `migrated` once complete, or it ends with one OpenAI-style error event and is settled as
  `error`; every leg's tokens are charged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.ledger import Status
from orchestrator.serving import failover as fo
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


@dataclass
class Continuation:
    """A stream's continuation on another engine: its first packet, the rest, the profile it
    runs on and that profile's prices."""

    first: Any
    gen: Any
    profile: str
    prices: Any


@dataclass
class StreamFailover:
    """How a relay may carry its stream across when the engine fails.

    `start(progress, failed_profiles)` starts the continuation (None when no other engine can
    take it); `on_failure(profile, reason)` reports the failed engine (marks it down);
    `endpoint` is the original's; `attempts` bounds the migrations of one stream."""

    endpoint: str
    migratable: bool
    start: Callable[[fo.StreamProgress, list[str]], Awaitable[Continuation | None]]
    on_failure: Callable[[str, str], None]
    show_token_ids: bool = False
    attempts: int = 1


def _failure_reason(item: Any) -> str:
    if isinstance(item, BaseException):
        return f"{type(item).__name__}: {item}"[:300]
    err = item.get("error") if isinstance(item, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or "engine error")[:300]
    return "engine error"


def _strip_token_ids(chunk: dict[str, Any]) -> None:
    """Drop the token ids the ingress asked for (for migration) but the client did not."""
    chunk.pop("prompt_token_ids", None)
    for choice in chunk.get("choices") or []:
        if isinstance(choice, dict):
            choice.pop("token_ids", None)
            choice.pop("prompt_token_ids", None)


def _carries_nothing(chunk: dict[str, Any]) -> bool:
    """A chunk with choices that hold nothing for the client (no delta, text, finish, usage)."""
    choices = chunk.get("choices")
    if not choices or "usage" in chunk:
        return False
    for c in choices:
        if not isinstance(c, dict) or c.get("finish_reason") or c.get("logprobs"):
            return False
        if c.get("delta") or c.get("text") or c.get("token_ids"):
            return False
    return True


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
    failover: StreamFailover | None = None,
) -> AsyncIterator[str]:
    """Relay `first` and then the rest of `gen` (an async iterator of stream packets).

    `wants_usage` / `wants_continuous_usage`: what the client's own `stream_options` asked
    for; `prompt_tokens`: what to charge for the prompt if the engine never said;
    `failover`: how to carry the stream across when its engine fails (None: end it with an
    error event).
    """
    engine_model_json = f'"model":"{engine_model}"'
    shown_model_json = f'"model":"{shown_model}"'
    tally = StreamTally()
    progress = fo.StreamProgress()
    rewriter: fo.ChunkRewriter | None = None
    failed: list[str] = [trace.profile]
    current = trace.profile
    stream_id: str | None = None
    created: int | None = None
    status: Status = "cancelled"
    try:
        packet = first
        while True:
            failure: Any = None
            out: list[str] = []  # this packet's events for the client, sent as one write
            for event in sse_events(packet):
                if event.startswith("data: [DONE]"):
                    continue  # ours is sent once, at the very end
                chunk = openai_io.sse_json(event)
                if chunk is None:  # not JSON we understand: relay as it came
                    trace.mark_first_token()
                    out.append(event.replace(engine_model_json, shown_model_json, 1))
                    continue
                if "error" in chunk and not chunk.get("choices"):
                    failure = chunk  # the engine ended the stream with an error
                    break
                trace.mark_first_token()
                if rewriter is not None:
                    chunk = rewriter.rewrite(chunk)
                else:
                    stream_id = stream_id or chunk.get("id")
                    created = created or chunk.get("created")
                progress.add(chunk)
                tally.add(chunk)  # before the token ids the client did not ask for go
                if failover is None or not failover.show_token_ids:
                    _strip_token_ids(chunk)
                usage = chunk.get("usage")
                if chunk.get("choices") == [] and isinstance(usage, dict):  # final usage chunk
                    leg = EngineUsage.from_openai(usage)
                    if rewriter is not None:  # this leg's own tokens: prompt + prior output
                        leg = EngineUsage(
                            prompt_tokens=rewriter.prompt_tokens + rewriter.prior_output,
                            output_tokens=leg.output_tokens - rewriter.prior_output,
                        )
                    cost = await settlement.settle(leg)
                    if wants_usage:
                        usage["cost_usd"] = round(cost, 10)
                        chunk["model"] = shown_model
                        out.append(openai_io.sse_event(chunk))
                    continue
                if usage is not None and not wants_continuous_usage:
                    del chunk["usage"]  # per-chunk usage was our request, not the client's
                if _carries_nothing(chunk):
                    continue  # a chunk sent only for its token ids (stripped above)
                chunk["model"] = shown_model
                out.append(openai_io.sse_event(chunk))
            if out:  # one write per engine packet, as Serve LLM's own ingress does
                yield "".join(out)
            if failure is None:
                try:
                    packet = await gen.__anext__()
                    continue
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the engine (or its replica) failed
                    failure = exc
            # the engine failed mid-stream: carry the stream across, or end it with an error
            reason = _failure_reason(failure)
            log.warning(
                "engine failed mid-stream",
                extra={"request_id": trace.request_id, "profile": current, "reason": reason},
            )
            if failover is not None:
                failover.on_failure(current, reason)
            cont = None
            if (
                failover is not None
                and failover.migratable
                and len(failed) <= failover.attempts
                and not progress.finished
            ):
                with contextlib.suppress(Exception):
                    cont = await failover.start(progress, list(failed))
            if cont is None:
                status = "error"
                yield fo.error_event(
                    f"the engine for profile '{current}' failed mid-stream and the stream "
                    f"could not be continued elsewhere: {reason}"
                )
                return
            done = tally.usage(prompt_tokens)
            if rewriter is not None:
                done = EngineUsage(
                    prompt_tokens=rewriter.prompt_tokens + rewriter.prior_output,
                    output_tokens=done.output_tokens - rewriter.prior_output,
                )
            settlement.migrate(done, cont.prices)
            log.info(
                "stream migrated",
                extra={"request_id": trace.request_id, "from": current, "to": cont.profile},
            )
            rewriter = fo.ChunkRewriter(
                endpoint=failover.endpoint,
                stream_id=stream_id,
                created=created,
                prior_output=len(progress.generated_token_ids),
                prompt_tokens=len(progress.prompt_token_ids or ()) or prompt_tokens,
                show_token_ids=failover.show_token_ids,
            )
            _cancel(gen)
            current, gen, packet = cont.profile, cont.gen, cont.first
            failed.append(current)
            engine_model_json = f'"model":"{current}"'
        status = "ok"
        yield DONE_EVENT
    finally:
        # a stream cut short (client gone: GeneratorExit at a yield, or CancelledError while
        # waiting for the engine; or an engine error) is charged for what it carried
        if status == "cancelled" and not settlement.settled:
            _cancel(gen)
            log.info(
                "stream ended early",
                extra={"request_id": trace.request_id, "profile": trace.profile},
            )
        usage = tally.usage(prompt_tokens)
        if rewriter is not None:  # the last leg's own tokens (earlier legs are in settlement)
            usage = EngineUsage(
                prompt_tokens=rewriter.prompt_tokens + rewriter.prior_output,
                output_tokens=max(usage.output_tokens - rewriter.prior_output, 0),
            )
        await settlement.settle(usage, status)
