"""A streamed chat answer re-emitted as the Responses API's server-sent events
(`ResponseStreamer`: the state machine of open output items, their deltas and their ends)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from orchestrator.serving import openai_io
from orchestrator.serving.responses_api.protocol import (
    OutputFunctionCall,
    OutputMessage,
    OutputReasoning,
    OutputText,
    ReasoningText,
    new_id,
)
from orchestrator.serving.responses_api.store import ResponseStore
from orchestrator.serving.responses_api.translate import Exchange, assistant_message

# ---------------------------------------------------------------- streaming


def sse(event: dict[str, Any]) -> str:
    """One Responses SSE event: `event: <type>` then its JSON."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data}\n\n"


@dataclass
class _Open:
    """An output item being streamed."""

    index: int
    kind: str  # reasoning | message | function_call
    item_id: str
    text: str = ""
    call_id: str = ""
    name: str = ""


class ResponseStreamer:
    """Turns the chat SSE events of one request (as the relay yields them, final usage chunk
    with `cost_usd` included) into Responses events, `response.created` to `response.completed`
    (or `response.incomplete` when the answer hit `max_output_tokens`)."""

    def __init__(self, exchange: Exchange, store: ResponseStore, model: str):
        self.exchange = exchange
        self.store = store
        self.model = model
        self._seq = 0
        self._items: list[Any] = []  # finished output items
        self._open: _Open | None = None
        self._calls: dict[int, _Open] = {}  # tool call index -> open item
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._content = ""
        self._tool_calls: list[dict[str, Any]] = []

    def _event(self, type_: str, **fields: Any) -> str:
        event = {"type": type_, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse(event)

    def _snapshot(self, status: str) -> dict[str, Any]:
        incomplete = status == "incomplete"
        obj = self.exchange.response(
            list(self._items),
            status=status,
            model=self.model,
            usage=self._usage,
            incomplete=incomplete,
        )
        return obj.model_dump(mode="json")

    def _next_index(self) -> int:
        return len(self._items) + (1 if self._open else 0) + len(self._calls)

    def _close_open(self) -> list[str]:
        item = self._open
        if item is None:
            return []
        self._open = None
        out: list[str] = []
        if item.kind == "reasoning":
            done = OutputReasoning(id=item.item_id, content=[ReasoningText(text=item.text)])
            out.append(
                self._part_event(
                    "response.reasoning_text.done",
                    item,
                    text=item.text,
                )
            )
        else:
            part = OutputText(text=item.text)
            done = OutputMessage(id=item.item_id, content=[part])
            out.append(
                self._part_event(
                    "response.output_text.done",
                    item,
                    text=item.text,
                    logprobs=[],
                )
            )
            out.append(
                self._part_event(
                    "response.content_part.done",
                    item,
                    part=part.model_dump(),
                )
            )
        self._items.append(done)
        out.append(
            self._event(
                "response.output_item.done", output_index=item.index, item=done.model_dump()
            )
        )
        return out

    def _part_event(self, kind: str, item: _Open, **fields: Any) -> str:
        """An event about the one content part of an open output item."""
        return self._event(
            kind, item_id=item.item_id, output_index=item.index, content_index=0, **fields
        )

    def _text(self, kind: str, delta: str) -> list[str]:
        out: list[str] = []
        if self._open is not None and self._open.kind != kind:
            out += self._close_open()
        if self._open is None:
            item = _Open(self._next_index(), kind, new_id("rs" if kind == "reasoning" else "msg"))
            self._open = item
            if kind == "reasoning":
                added = OutputReasoning(id=item.item_id, status="in_progress")
                out.append(
                    self._event(
                        "response.output_item.added",
                        output_index=item.index,
                        item=added.model_dump(),
                    )
                )
            else:
                added_msg = OutputMessage(id=item.item_id, status="in_progress", content=[])
                out.append(
                    self._event(
                        "response.output_item.added",
                        output_index=item.index,
                        item=added_msg.model_dump(),
                    )
                )
                out.append(
                    self._part_event(
                        "response.content_part.added",
                        item,
                        part=OutputText(text="").model_dump(),
                    )
                )
        item = self._open
        item.text += delta
        if kind == "reasoning":
            out.append(self._part_event("response.reasoning_text.delta", item, delta=delta))
        else:
            self._content += delta
            out.append(
                self._part_event("response.output_text.delta", item, delta=delta, logprobs=[])
            )
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[str]:
        out: list[str] = []
        index = int(call.get("index") or 0)
        fn = call.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            out += self._close_open()
            item = _Open(self._next_index(), "function_call", new_id("fc"))
            item.call_id = call.get("id") or new_id("call")
            item.name = fn.get("name") or ""
            self._calls[index] = item
            added = OutputFunctionCall(
                id=item.item_id,
                call_id=item.call_id,
                name=item.name,
                arguments="",
                status="in_progress",
            )
            out.append(
                self._event(
                    "response.output_item.added", output_index=item.index, item=added.model_dump()
                )
            )
        elif fn.get("name"):
            item.name += fn["name"]
        delta = fn.get("arguments") or ""
        if delta:
            item.text += delta
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.item_id,
                    output_index=item.index,
                    delta=delta,
                )
            )
        return out

    def _close_calls(self) -> list[str]:
        out: list[str] = []
        for item in sorted(self._calls.values(), key=lambda i: i.index):
            done = OutputFunctionCall(
                id=item.item_id, call_id=item.call_id, name=item.name, arguments=item.text
            )
            self._tool_calls.append(
                {
                    "id": item.call_id,
                    "type": "function",
                    "function": {"name": item.name, "arguments": item.text},
                }
            )
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.item_id,
                    output_index=item.index,
                    name=item.name,
                    arguments=item.text,
                )
            )
            self._items.append(done)
            out.append(
                self._event(
                    "response.output_item.done", output_index=item.index, item=done.model_dump()
                )
            )
        self._calls = {}
        return out

    def start(self) -> list[str]:
        snapshot = self._snapshot("in_progress")
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def feed(self, event: str) -> list[str]:
        """The Responses events for one chat SSE event."""
        chunk = openai_io.sse_json(event)
        if chunk is None:
            return []
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            return [
                self._event(
                    "error",
                    code=str(err.get("code")) if err.get("code") is not None else None,
                    message=str(err.get("message", "engine error")),
                    param=err.get("param"),
                )
            ]
        if isinstance(chunk.get("usage"), dict) and not chunk.get("choices"):
            self._usage = chunk["usage"]
            return []
        out: list[str] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if reasoning:
                out += self._text("reasoning", reasoning)
            if delta.get("content"):
                out += self._text("message", delta["content"])
            for call in delta.get("tool_calls") or []:
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def finish(self) -> list[str]:
        out = self._close_open() + self._close_calls()
        status = "incomplete" if self._finish == "length" else "completed"
        self.exchange.remember(
            self.store, assistant_message(self._content or None, self._tool_calls)
        )
        out.append(self._event(f"response.{status}", response=self._snapshot(status)))
        return out

    async def relay(self, chat_events: AsyncIterator[str]) -> AsyncIterator[str]:
        """Responses events for a relayed chat stream; ends with response.completed only if
        the chat stream ran to its `[DONE]`."""
        for e in self.start():
            yield e
        done = False
        async for packet in chat_events:
            for event in openai_io.split_sse(packet):
                if event.startswith("data: [DONE]"):
                    done = True
                    continue
                for out in self.feed(event):
                    yield out
        if done:  # the store may be a shared database: written in a worker thread
            for e in await asyncio.to_thread(self.finish):
                yield e
