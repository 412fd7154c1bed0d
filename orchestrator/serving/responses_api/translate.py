"""A Responses request into a chat request (with the stored conversation before it), and a chat
answer into a Response (`Exchange`: one request/answer pair, stored for `previous_response_id`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from orchestrator.serving.responses_api.protocol import (
    FunctionCallItem,
    FunctionCallOutputItem,
    IncompleteDetails,
    InputImage,
    MessageItem,
    OutputFunctionCall,
    OutputMessage,
    OutputReasoning,
    OutputText,
    ReasoningText,
    ResponseObject,
    ResponsesRequest,
    ToolChoiceFunction,
    new_id,
    parse_request,
    response_usage,
)
from orchestrator.serving.responses_api.store import ResponseStore, StoredResponse

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


# ---------------------------------------------------------------- one exchange


@dataclass
class Exchange:
    """One Responses request on its way through the chat path, and back."""

    request: ResponsesRequest
    tenant: str
    history: list[dict[str, Any]]
    response_id: str = field(default_factory=lambda: new_id("resp"))
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
            usage=response_usage(usage),
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
        output = output_items(
            message.get("reasoning") or message.get("reasoning_content"),
            message.get("content"),
            message.get("tool_calls") or [],
        )
        incomplete = choice.get("finish_reason") == "length"
        self.remember(store, assistant_message(message.get("content"), message.get("tool_calls")))
        return self.response(
            output,
            status="incomplete" if incomplete else "completed",
            model=str(payload.get("model") or ""),
            usage=payload.get("usage"),
            incomplete=incomplete,
        )


def assistant_message(content: str | None, tool_calls: list[dict[str, Any]] | None) -> dict:
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


def output_items(
    reasoning: str | None, content: str | None, tool_calls: list[dict[str, Any]]
) -> list[Any]:
    out: list[Any] = []
    if reasoning:
        out.append(OutputReasoning(id=new_id("rs"), content=[ReasoningText(text=reasoning)]))
    if content:
        out.append(OutputMessage(id=new_id("msg"), content=[OutputText(text=content)]))
    for call in tool_calls:
        fn = call.get("function") or {}
        out.append(
            OutputFunctionCall(
                id=new_id("fc"),
                call_id=call.get("id") or new_id("call"),
                name=fn.get("name") or "",
                arguments=fn.get("arguments") or "",
            )
        )
    return out
