"""Parse and check OpenAI request bodies; rewrite engine output for the client.

Invariants: a body that fails here never reaches an engine; every failure is an
`OrchestratorHTTPError` with a 4xx status naming the offending field (`param`).
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

from pydantic import BaseModel, ValidationError

from orchestrator.serving import client_fields
from orchestrator.serving.errors import OrchestratorHTTPError

Endpoint = Literal["chat", "completions"]


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object."""
    if not raw:
        raise OrchestratorHTTPError(400, "request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OrchestratorHTTPError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise OrchestratorHTTPError(400, "request body must be a JSON object")
    return body


def check_common_fields(body: dict[str, Any], endpoint: Endpoint) -> None:
    """Checks that give a clearer message than the engine's own validation (the fields the
    request core reads, max_tokens, n and the reasoning wish, are checked by its spec)."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise OrchestratorHTTPError(400, "'model' must be a string", param="model")
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise OrchestratorHTTPError(
                400, "'messages' must be a non-empty array of messages", param="messages"
            )
        client_fields.check_messages(messages)
    else:
        prompt = body.get("prompt")
        if prompt is None:
            raise OrchestratorHTTPError(400, "'prompt' is required", param="prompt")
        if prompt == [] or prompt == [[]]:
            raise OrchestratorHTTPError(
                400, "'prompt' is an empty array: send at least one prompt", param="prompt"
            )


def _vllm_client_errors() -> tuple[type[Exception], ...]:
    """vLLM's request errors (4xx). Its request models raise them from validators; they are
    not `ValueError`s, so pydantic lets them through instead of wrapping them."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:  # another engine behind ray.serve.llm
        return ()
    return (VLLMClientError,)


def validate_request(body: dict[str, Any], endpoint: Endpoint) -> Any:
    """Build vLLM's request model from a body: `ray.serve.llm.openai_api_models`'
    `ChatCompletionRequest` / `CompletionRequest`, thin subclasses of vLLM's own
    (`vllm.entrypoints.openai.chat_completion.protocol.ChatCompletionRequest`,
    `vllm.entrypoints.openai.completion.protocol.CompletionRequest` in vLLM 0.32), i.e. what
    the profile engines accept. Any failure is a 400 naming the field (`param`)."""
    from ray.serve.llm.openai_api_models import ChatCompletionRequest, CompletionRequest

    model_cls = ChatCompletionRequest if endpoint == "chat" else CompletionRequest
    try:
        return model_cls.model_validate(body)
    except ValidationError as exc:
        raise client_fields.validation_error(exc.errors(include_url=False), body) from None
    except _vllm_client_errors() as exc:
        param = getattr(exc, "parameter", None)
        message = str(exc.args[0]) if exc.args else str(exc)
        if param and param not in message:
            message = f"invalid '{param}': {message}"
        raise OrchestratorHTTPError(400, message, param=param) from None


def engine_stream_options(options: Any, *, per_chunk_usage: bool = True) -> dict[str, Any]:
    """The client's `stream_options` with the final usage forced on, and usage on every chunk
    when `per_chunk_usage`, so the ingress can always account, even for a stream cut short
    (the relay hides what was not asked for). Without `per_chunk_usage` the caller counts the
    chunks' token ids instead (a stream that may migrate asks for them anyway: one per-chunk
    extra costs the engine and the ingress less than two)."""
    base = options if isinstance(options, dict) else {}
    forced = {"include_usage": True}
    if per_chunk_usage:
        forced["continuous_usage_stats"] = True
    return {**base, **forced}


def engine_stream_options_model(request: Any, *, per_chunk_usage: bool = True) -> Any:
    """`engine_stream_options` as the request model's own `stream_options` type (vLLM's
    `StreamOptions`), for `request.model_copy(update=...)`."""
    field = type(request).model_fields["stream_options"]
    options_cls = next(
        arg
        for arg in (*get_args(field.annotation), field.annotation)
        if isinstance(arg, type) and issubclass(arg, BaseModel)
    )
    current = request.stream_options
    base = current.model_dump(exclude_unset=True) if current is not None else {}
    return options_cls(**engine_stream_options(base, per_chunk_usage=per_chunk_usage))


def sse_json(event: str) -> dict[str, Any] | None:
    """The JSON object of one `data:` event; None for `[DONE]`, comments and anything else."""
    payload = event.strip()
    if not payload.startswith("data:"):
        return None
    payload = payload[5:].strip()
    if not payload.startswith("{"):
        return None
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def sse_event(data: dict[str, Any]) -> str:
    """One `data:` event for a JSON object (compact, UTF-8 kept as is)."""
    return f"data: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"


def split_sse(packet: str) -> list[str]:
    """Split a batch of SSE events (`data: ...\\n\\n` repeated) into single events."""
    return [e + "\n\n" for e in packet.split("\n\n") if e.strip()]
