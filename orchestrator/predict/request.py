"""Turn an OpenAI chat or completion request body into the plain parts the predictor reads.

Pure: no tokenizer, no I/O. Malformed bodies raise `PredictorInputError` (a ValueError, so
the server maps it to HTTP 400); non-text content parts (images, audio, files) are skipped
and counted, never a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_N = 128  # more choices than this is a client error in practice; clamp, don't crash
_NON_TEXT_PARTS = {"image_url", "input_image", "image", "input_audio", "audio", "file", "video_url"}
_TEXT_PARTS = {"text", "input_text"}
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
# OpenAI's reasoning efforts; "none" and "minimal" ask for no thinking
EFFORTS = ("none", "minimal", "low", "medium", "high")
NO_THINKING = ("none", "minimal")


class PredictorInputError(ValueError):
    """The request body cannot be read; the message says which field and why, `param` names
    the field as the client sent it (None: the body as a whole)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class RequestWishes:
    """What the client asked of the generation, read once (`read_wishes`).

    `max_tokens`: `max_completion_tokens` when set (not null), else `max_tokens` (as vLLM and
    OpenAI read them), None when neither is; `max_tokens_param` is the field it came from.
    `reasoning`: the explicit wish (`chat_template_kwargs.enable_thinking` wins over an effort;
    efforts `none` / `minimal` mean off), None when the body says nothing."""

    max_tokens: int | None = None
    max_tokens_param: str | None = None
    n: int = 1
    reasoning: bool | None = None
    reasoning_effort: str | None = None
    reasoning_param: str | None = None


@dataclass(frozen=True)
class Turn:
    role: str
    text: str


@dataclass(frozen=True)
class ParsedRequest:
    """What the predictor uses from a request body.

    Invariants: `turns` is non-empty; `max_tokens` is None or >= 1; 1 <= n <= MAX_N.
    `prompt_token_ids` is set only for completion requests that pass token ids.
    """

    turns: tuple[Turn, ...]
    max_tokens: int | None = None
    n: int = 1
    tools_text: str = ""
    non_text_parts: int = 0
    reasoning_requested: bool | None = None  # True/False when the body says, else None
    reasoning_effort: str | None = None
    prompt_token_ids: tuple[int, ...] | None = None
    is_completion: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last_user_text(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "user":
                return turn.text
        return self.turns[-1].text


def _positive_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PredictorInputError(f"'{key}' must be an integer, got {value!r}", key)
    if value < 1:
        raise PredictorInputError(f"'{key}' must be at least 1, got {value}", key)
    return value


def _content_text(content: Any, where: str) -> tuple[str, int]:
    """Text of a message content (string or list of parts) and the count of non-text parts."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise PredictorInputError(f"{where}.content: must be a string or a list of parts")
    texts: list[str] = []
    skipped = 0
    for i, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise PredictorInputError(f"{where}.content[{i}]: a part must be an object with a type")
        kind = part["type"]
        if kind in _TEXT_PARTS:
            text = part.get("text")
            if not isinstance(text, str):
                raise PredictorInputError(f"{where}.content[{i}].text: must be a string")
            texts.append(text)
        elif kind in _NON_TEXT_PARTS or kind not in _TEXT_PARTS:
            skipped += 1
    return "\n".join(texts), skipped


def _reasoning(body: dict[str, Any]) -> tuple[bool | None, str | None, str | None]:
    """(wish, effort, the field it was read from)."""
    effort, param = body.get("reasoning_effort"), "reasoning_effort"
    reasoning = body.get("reasoning")
    if effort is None and isinstance(reasoning, dict):  # the Responses API's shape
        effort, param = reasoning.get("effort"), "reasoning.effort"
    if effort is not None and effort not in EFFORTS:
        raise PredictorInputError(
            f"'{param}' must be one of {', '.join(EFFORTS)}, got {effort!r}", param
        )
    wish: bool | None = None if effort is None else effort not in NO_THINKING
    kwargs = body.get("chat_template_kwargs")
    if isinstance(kwargs, dict) and isinstance(kwargs.get("enable_thinking"), bool):
        wish, param = kwargs["enable_thinking"], "chat_template_kwargs.enable_thinking"
    return wish, effort, (param if wish is not None or effort is not None else None)


def read_wishes(body: dict[str, Any]) -> RequestWishes:
    """The one reading of max_tokens, n and the reasoning wish (see `RequestWishes`); a field
    of the wrong type or range raises `PredictorInputError` naming it."""
    max_tokens, param = _positive_int(body, "max_completion_tokens"), "max_completion_tokens"
    if max_tokens is None:
        max_tokens, param = _positive_int(body, "max_tokens"), "max_tokens"
    wish, effort, reasoning_param = _reasoning(body)
    return RequestWishes(
        max_tokens=max_tokens,
        max_tokens_param=param if max_tokens is not None else None,
        n=_positive_int(body, "n") or 1,
        reasoning=wish,
        reasoning_effort=effort,
        reasoning_param=reasoning_param,
    )


def _completion_prompt(prompt: Any) -> tuple[tuple[Turn, ...], tuple[int, ...] | None, int]:
    """Turns (and token ids, when given as ids) of a /v1/completions prompt; returns batch size."""
    if isinstance(prompt, str):
        return (Turn("user", prompt),), None, 1
    if isinstance(prompt, list) and prompt:
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return (Turn("user", ""),), tuple(prompt), 1
        if all(isinstance(t, str) for t in prompt):
            return tuple(Turn("user", t) for t in prompt), None, len(prompt)
        if all(isinstance(t, list) for t in prompt):
            ids = [int(i) for seq in prompt for i in seq if isinstance(i, int)]
            return (Turn("user", ""),), tuple(ids), len(prompt)
    raise PredictorInputError("prompt: must be a non-empty string, list of strings or token ids")


def parse_request(body: Any, wishes: RequestWishes | None = None) -> ParsedRequest:
    """Read a chat (`messages`) or completion (`prompt`) body. Raises PredictorInputError.
    `wishes`: the body's `read_wishes`, when the caller read them already (the server's
    request spec); else they are read here, the same way."""
    if not isinstance(body, dict):
        raise PredictorInputError("request body must be a JSON object")
    wishes = wishes if wishes is not None else read_wishes(body)
    max_tokens = wishes.max_tokens
    n = min(wishes.n, MAX_N)
    requested, effort = wishes.reasoning, wishes.reasoning_effort
    tools = body.get("tools") or body.get("functions")
    tools_text = json.dumps(tools, ensure_ascii=False, sort_keys=True) if tools else ""

    if "messages" in body:
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise PredictorInputError("messages: must be a non-empty list")
        turns: list[Turn] = []
        skipped = 0
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                raise PredictorInputError(f"messages[{i}]: must be an object")
            role = msg.get("role")
            if role not in _ROLES:
                raise PredictorInputError(f"messages[{i}].role: unknown role {role!r}")
            text, s = _content_text(msg.get("content"), f"messages[{i}]")
            skipped += s
            if msg.get("tool_calls"):
                text = (text + "\n" + json.dumps(msg["tool_calls"], ensure_ascii=False)).strip()
            turns.append(Turn(str(role), text))
        return ParsedRequest(
            turns=tuple(turns),
            max_tokens=max_tokens,
            n=n,
            tools_text=tools_text,
            non_text_parts=skipped,
            reasoning_requested=requested,
            reasoning_effort=effort,
        )
    if "prompt" in body:
        turns_c, ids, batch = _completion_prompt(body["prompt"])
        return ParsedRequest(
            turns=turns_c,
            max_tokens=max_tokens if max_tokens is not None else 16,  # OpenAI completions default
            n=min(n * batch, MAX_N),
            reasoning_requested=requested,
            reasoning_effort=effort,
            prompt_token_ids=ids,
            is_completion=True,
        )
    raise PredictorInputError("request needs `messages` (chat) or `prompt` (completion)")
