"""OpenAI's Responses API (`POST /v1/responses`) served through the chat path.

Ray Serve LLM 2.60 does not serve Responses, and vLLM's own `OpenAIServingResponses` keeps its
conversation store inside one engine replica, which a router that picks a profile per request
cannot follow. So the ingress translates: a Responses request becomes a chat request (then
predicted, priced, decided, served and settled exactly like chat), and the chat answer (whole
or streamed) becomes a Response. Pure: no Ray, no HTTP, no clock except `created_at`.

Invariants:
- the request model forbids unknown fields: a Responses feature this translation does not
  carry (built-in tools, `include`, background mode, ...) is a 400 naming it, never ignored;
- `previous_response_id` continues a stored conversation (its messages, its answer, then the
  new input; `instructions` are not carried over, as in OpenAI's API); an id this server did
  not store, or stored for another tenant, is a 400 naming `previous_response_id`;
- usage is the chat usage renamed (input/output tokens; reasoning tokens are output tokens)
  with the same `cost_usd`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from orchestrator.serving import openai_io
from orchestrator.serving.errors import OrchestratorHTTPError, param_from_loc


class _Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- request


class InputText(_Forbid):
    type: Literal["input_text"]
    text: str


class OutputTextPart(_Forbid):
    """An earlier answer's text, sent back as conversation history."""

    type: Literal["output_text"]
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] | None = None


class InputImage(_Forbid):
    type: Literal["input_image"]
    image_url: str
    detail: Literal["low", "high", "auto"] = "auto"


class Refusal(_Forbid):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    InputText | OutputTextPart | InputImage | Refusal, Field(discriminator="type")
]


class MessageItem(_Forbid):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class FunctionCallItem(_Forbid):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(_Forbid):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str
    id: str | None = None
    status: str | None = None


class ReasoningItem(_Forbid):
    """An earlier answer's reasoning, sent back by agent loops; chat models do not take it
    back, so it is dropped from the engine request."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[Any] = Field(default_factory=list)
    content: list[Any] | None = None
    encrypted_content: str | None = None
    status: str | None = None


def _item_type(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "message"))
    return str(getattr(value, "type", "message"))


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(_item_type),
]


class FunctionTool(_Forbid):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoiceFunction(_Forbid):
    type: Literal["function"]
    name: str = Field(min_length=1)


class ReasoningOptions(_Forbid):
    effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class TextFormat(_Forbid):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextOptions(_Forbid):
    format: TextFormat | None = None


class ResponsesRequest(_Forbid):
    """The Responses request fields this server carries to the chat path (all of them)."""

    model: str | None = None
    input: str | list[InputItem]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    store: bool = True
    metadata: dict[str, str] | None = None
    reasoning: ReasoningOptions | None = None
    text: TextOptions | None = None
    user: str | None = None
    truncation: Literal["disabled"] | None = None


def parse_request(body: dict[str, Any]) -> ResponsesRequest:
    """Validate a Responses body; any failure is a 400 naming the field as the client sent it."""
    try:
        return ResponsesRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = param_from_loc(err["loc"])
        raise OrchestratorHTTPError(400, f"invalid '{param}': {err['msg']}", param=param) from None


# ---------------------------------------------------------------- request -> chat


def _content(content: str | list[Any], role: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if role != "user" or not any(isinstance(p, InputImage) for p in content):
        return "".join(getattr(p, "text", None) or getattr(p, "refusal", "") for p in content)
    parts: list[dict[str, Any]] = []
    for p in content:
        if isinstance(p, InputImage):
            parts.append({"type": "image_url", "image_url": {"url": p.image_url}})
        else:
            parts.append({"type": "text", "text": getattr(p, "text", "")})
    return parts


def input_messages(items: str | list[Any]) -> list[dict[str, Any]]:
    """Chat messages for a Responses `input` (function calls join the assistant turn)."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, MessageItem):
            role = "system" if item.role == "developer" else item.role
            out.append({"role": role, "content": _content(item.content, item.role)})
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            out.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
    return out


def chat_body(req: ResponsesRequest, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat request equivalent to `req` after the stored `history` messages."""
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages += history
    messages += input_messages(req.input)
    body: dict[str, Any] = {"messages": messages, "stream": req.stream}
    if req.model is not None:
        body["model"] = req.model
    optional = {
        "max_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "parallel_tool_calls": req.parallel_tool_calls,
        "user": req.user,
        "reasoning_effort": req.reasoning.effort if req.reasoning else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": t.model_dump(exclude={"type"}, exclude_none=True),
            }
            for t in req.tools
        ]
    if isinstance(req.tool_choice, ToolChoiceFunction):
        body["tool_choice"] = {"type": "function", "function": {"name": req.tool_choice.name}}
    elif req.tool_choice is not None:
        body["tool_choice"] = req.tool_choice
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        spec = {"name": fmt.name or "response", "schema": fmt.schema_ or {}}
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        if fmt.description:
            spec["description"] = fmt.description
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    return body


# ---------------------------------------------------------------- response model


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    content: list[OutputText]


class OutputFunctionCall(BaseModel):
    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


class OutputReasoning(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    id: str
    summary: list[Any] = Field(default_factory=list)
    content: list[ReasoningText] = Field(default_factory=list)
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


OutputItem = Annotated[
    OutputMessage | OutputFunctionCall | OutputReasoning, Field(discriminator="type")
]


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = InputTokensDetails()
    output_tokens: int = Field(description="every generated token, reasoning included")
    output_tokens_details: OutputTokensDetails = OutputTokensDetails()
    total_tokens: int
    cost_usd: float | None = Field(None, description="what this request cost (USD)")


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseObject(BaseModel):
    """A Response as OpenAI's API returns it (the fields this server fills)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "incomplete", "in_progress", "failed"]
    model: str
    output: list[OutputItem]
    usage: ResponseUsage | None = None
    error: dict[str, Any] | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    store: bool = True
    temperature: float | None = None
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: Any = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_p: float | None = None
    truncation: Literal["disabled"] = "disabled"
    user: str | None = None


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _usage(usage: dict[str, Any] | None) -> ResponseUsage | None:
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    output = int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return ResponseUsage(
        input_tokens=prompt,
        input_tokens_details=InputTokensDetails(cached_tokens=int(cached)),
        output_tokens=output,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=int(reasoning)),
        total_tokens=int(usage.get("total_tokens") or prompt + output),
        cost_usd=usage.get("cost_usd"),
    )


# ---------------------------------------------------------------- conversation store


@dataclass(frozen=True)
class StoredResponse:
    tenant: str
    messages: tuple[dict[str, Any], ...]  # the whole conversation, the answer included


class ResponseStore:
    """The last `capacity` stored conversations by response id (per ingress replica, in
    memory: a restart forgets them, and `previous_response_id` then gets a 400)."""

    def __init__(self, capacity: int = 2_000):
        self.capacity = capacity
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()

    def put(self, response_id: str, stored: StoredResponse) -> None:
        self._items[response_id] = stored
        self._items.move_to_end(response_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def history(self, response_id: str, tenant: str) -> list[dict[str, Any]]:
        found = self._items.get(response_id)
        if found is None or found.tenant != tenant:
            raise not_stored(response_id)
        return [dict(m) for m in found.messages]


def not_stored(response_id: str) -> OrchestratorHTTPError:
    """The 400 for a `previous_response_id` no store has for this tenant."""
    return OrchestratorHTTPError(
        400,
        f"previous response '{response_id}' is not stored on this server (it was made "
        "with store=false, by another tenant, or has been evicted)",
        param="previous_response_id",
        code="previous_response_not_found",
    )


# ---------------------------------------------------------------- one exchange


@dataclass
class Exchange:
    """One Responses request on its way through the chat path, and back."""

    request: ResponsesRequest
    tenant: str
    history: list[dict[str, Any]]
    response_id: str = field(default_factory=lambda: _new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def open(cls, body: dict[str, Any], tenant: str, store: ResponseStore) -> Exchange:
        req = parse_request(body)
        history = (
            store.history(req.previous_response_id, tenant) if req.previous_response_id else []
        )
        return cls(req, tenant, history)

    def chat_body(self) -> dict[str, Any]:
        return chat_body(self.request, self.history)

    def response(
        self,
        output: list[Any],
        *,
        status: str,
        model: str,
        usage: dict[str, Any] | None,
        incomplete: bool = False,
    ) -> ResponseObject:
        req = self.request
        return ResponseObject(
            id=self.response_id,
            created_at=self.created_at,
            status=status,  # type: ignore[arg-type]
            model=model,
            output=output,
            usage=_usage(usage),
            incomplete_details=IncompleteDetails(reason="max_output_tokens")
            if incomplete
            else None,
            instructions=req.instructions,
            max_output_tokens=req.max_output_tokens,
            metadata=req.metadata or {},
            parallel_tool_calls=req.parallel_tool_calls is not False,
            previous_response_id=req.previous_response_id,
            reasoning=req.reasoning.model_dump() if req.reasoning else None,
            store=req.store,
            temperature=req.temperature,
            text=req.text.model_dump(by_alias=True, exclude_none=True)
            if req.text
            else {"format": {"type": "text"}},
            tool_choice=req.tool_choice.model_dump()
            if isinstance(req.tool_choice, BaseModel)
            else (req.tool_choice or "auto"),
            tools=[t.model_dump(exclude_none=True) for t in req.tools or []],
            top_p=req.top_p,
            user=req.user,
        )

    def remember(self, store: ResponseStore, answer: dict[str, Any]) -> None:
        """Store the conversation (without instructions) plus `answer`, unless store=false."""
        if not self.request.store:
            return
        messages = [*self.history, *input_messages(self.request.input), answer]
        store.put(self.response_id, StoredResponse(self.tenant, tuple(messages)))

    def from_chat(self, payload: dict[str, Any], store: ResponseStore) -> ResponseObject:
        """The Response for a whole chat completion (whose usage carries `cost_usd`)."""
        choice = (payload.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        output = _output_items(
            message.get("reasoning") or message.get("reasoning_content"),
            message.get("content"),
            message.get("tool_calls") or [],
        )
        incomplete = choice.get("finish_reason") == "length"
        self.remember(store, _assistant_message(message.get("content"), message.get("tool_calls")))
        return self.response(
            output,
            status="incomplete" if incomplete else "completed",
            model=str(payload.get("model") or ""),
            usage=payload.get("usage"),
            incomplete=incomplete,
        )


def _assistant_message(content: str | None, tool_calls: list[dict[str, Any]] | None) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": c.get("id"),
                "type": "function",
                "function": {
                    "name": (c.get("function") or {}).get("name"),
                    "arguments": (c.get("function") or {}).get("arguments") or "",
                },
            }
            for c in tool_calls
        ]
    return message


def _output_items(
    reasoning: str | None, content: str | None, tool_calls: list[dict[str, Any]]
) -> list[Any]:
    out: list[Any] = []
    if reasoning:
        out.append(OutputReasoning(id=_new_id("rs"), content=[ReasoningText(text=reasoning)]))
    if content:
        out.append(OutputMessage(id=_new_id("msg"), content=[OutputText(text=content)]))
    for call in tool_calls:
        fn = call.get("function") or {}
        out.append(
            OutputFunctionCall(
                id=_new_id("fc"),
                call_id=call.get("id") or _new_id("call"),
                name=fn.get("name") or "",
                arguments=fn.get("arguments") or "",
            )
        )
    return out


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
                self._event(
                    "response.reasoning_text.done",
                    item_id=item.item_id,
                    output_index=item.index,
                    content_index=0,
                    text=item.text,
                )
            )
        else:
            part = OutputText(text=item.text)
            done = OutputMessage(id=item.item_id, content=[part])
            out.append(
                self._event(
                    "response.output_text.done",
                    item_id=item.item_id,
                    output_index=item.index,
                    content_index=0,
                    text=item.text,
                    logprobs=[],
                )
            )
            out.append(
                self._event(
                    "response.content_part.done",
                    item_id=item.item_id,
                    output_index=item.index,
                    content_index=0,
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

    def _text(self, kind: str, delta: str) -> list[str]:
        out: list[str] = []
        if self._open is not None and self._open.kind != kind:
            out += self._close_open()
        if self._open is None:
            item = _Open(self._next_index(), kind, _new_id("rs" if kind == "reasoning" else "msg"))
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
                    self._event(
                        "response.content_part.added",
                        item_id=item.item_id,
                        output_index=item.index,
                        content_index=0,
                        part=OutputText(text="").model_dump(),
                    )
                )
        item = self._open
        item.text += delta
        if kind == "reasoning":
            out.append(
                self._event(
                    "response.reasoning_text.delta",
                    item_id=item.item_id,
                    output_index=item.index,
                    content_index=0,
                    delta=delta,
                )
            )
        else:
            self._content += delta
            out.append(
                self._event(
                    "response.output_text.delta",
                    item_id=item.item_id,
                    output_index=item.index,
                    content_index=0,
                    delta=delta,
                    logprobs=[],
                )
            )
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[str]:
        out: list[str] = []
        index = int(call.get("index") or 0)
        fn = call.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            out += self._close_open()
            item = _Open(self._next_index(), "function_call", _new_id("fc"))
            item.call_id = call.get("id") or _new_id("call")
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
            self.store, _assistant_message(self._content or None, self._tool_calls)
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
