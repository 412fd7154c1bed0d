"""Name request fields as the client wrote them, and check the message shapes vLLM lets by.

Pure: no Ray, no engine. Invariants:
- `client_param` maps a pydantic error location onto the client's own body: union-member tags
  (`ChatCompletionDeveloperMessageParam`), type tags (`str`, `list[...]`) and other internal
  names never appear in it;
- `validation_error` turns all of a `ValidationError`'s entries into one 400 naming the
  deepest field the client sent, and what was expected there;
- `check_messages` refuses shapes the engines would fail on later (unknown role, non-string
  text, content that is neither a string, an array of parts nor null).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from orchestrator.serving.errors import OrchestratorHTTPError

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")  # a snake_case JSON field, not a type or class tag
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "bytes", "json-or-python"}
_EXPECTED = {
    "string_type": "a string",
    "iterable_type": "an array",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "typed_dict_type": "an object",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "none_required": "null",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _walk(loc: Sequence[Any], body: Any) -> tuple[list[str | int], bool]:
    """The part of `loc` that names places in `body` (and whether it names an existing value).

    A component is kept when it indexes the current value (a key of an object, an index of an
    array), or when it is a snake_case field missing from an object (a required field); any
    other component (union member, type tag) is skipped."""
    path: list[str | int] = []
    current, exists = body, True
    for part in loc:
        if part == "body" and not path:
            continue
        indexes_list = isinstance(current, list) and isinstance(part, int)
        if (indexes_list and 0 <= part < len(current)) or (
            isinstance(current, dict) and isinstance(part, str) and part in current
        ):
            path.append(part)
            current = current[part]
        elif (
            isinstance(part, str)
            and exists
            and isinstance(current, dict)
            and _FIELD.match(part)
            and part not in _TYPE_TAGS
        ):
            path.append(part)  # a field the client left out
            current, exists = None, False
    return path, exists


def format_path(path: Sequence[str | int]) -> str:
    """`["messages", 0, "content"]` -> `messages[0].content`."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + p
    return out


def client_param(loc: Sequence[Any], body: Any) -> str:
    """The dotted field name, as in the client's body, of a pydantic error location."""
    return format_path(_walk(loc, body)[0])


def _value_at(body: Any, path: Sequence[str | int]) -> Any:
    for p in path:
        body = body[p]
    return body


def validation_error(errors: Sequence[dict[str, Any]], body: Any) -> OrchestratorHTTPError:
    """One 400 for a pydantic error list: the deepest field the client sent, what it holds
    and what would be accepted there (a union's alternatives merged)."""
    located = []
    for err in errors:
        path, exists = _walk(err.get("loc", ()), body)
        located.append((len(path) + (1 if exists else 0), path, exists, err))
    depth = max(d for d, *_ in located)
    deepest = [(p, e, err) for d, p, e, err in located if d == depth]
    path, exists, first = deepest[0]
    same = [err for p, _e, err in deepest if p == path]
    param = format_path(path)
    if not exists:
        return OrchestratorHTTPError(400, f"'{param}' is required", param=param)
    expected = list(dict.fromkeys(_EXPECTED[e["type"]] for e in same if e["type"] in _EXPECTED))
    if expected and len(expected) == len(same):
        got = _json_type(_value_at(body, path))
        message = f"invalid '{param}': expected {' or '.join(expected)}, got {got}"
    else:  # a value error (range, literal, pattern): pydantic's own words
        message = f"invalid '{param}': {first.get('msg', 'invalid value')}"
    return OrchestratorHTTPError(400, message, param=param or None)


def _bad(param: str, message: str) -> OrchestratorHTTPError:
    return OrchestratorHTTPError(400, f"invalid '{param}': {message}", param=param)


def check_messages(messages: Sequence[Any]) -> None:
    """Roles, content and text parts of chat messages (what vLLM's TypedDicts let through)."""
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(at, f"expected an object, got {_json_type(m)}")
        role = m.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise _bad(f"{at}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        if "content" not in m and role != "assistant":
            raise OrchestratorHTTPError(400, f"'{at}.content' is required", param=f"{at}.content")
        content = m.get("content")
        if content is None:
            if role != "assistant":
                raise _bad(f"{at}.content", "expected a string or an array of parts, got null")
            continue
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise _bad(
                f"{at}.content",
                f"expected a string or an array of parts, got {_json_type(content)}",
            )
        for j, part in enumerate(content):
            where = f"{at}.content[{j}]"
            if not isinstance(part, dict):
                raise _bad(where, f"expected an object, got {_json_type(part)}")
            kind = part.get("type")
            if kind in ("text", "input_text") and not isinstance(part.get("text"), str):
                raise _bad(
                    f"{where}.text", f"expected a string, got {_json_type(part.get('text'))}"
                )


def empty_prompt(prompt: Any) -> bool:
    """A completion prompt with no text at all (`""`), which vLLM refuses but OpenAI answers
    (generating from the start-of-document token)."""
    return prompt == ""


_DOCUMENT_START = ("<|endoftext|>", "<|begin_of_text|>", "<s>", "<bos>", "</s>")


def document_start_ids(profile: Any) -> list[int]:
    """The prompt an empty completion prompt stands for: the model's start-of-document token
    (OpenAI treats `prompt: ""` as `<|endoftext|>`), in the profile's tokenizer."""
    from orchestrator.predict.tokenizer import load_tokenizer, tokenizer_spec

    tok = load_tokenizer(tokenizer_spec(profile))
    for name in _DOCUMENT_START:
        token_id = tok.token_to_id(name)
        if token_id is not None:
            return [token_id]
    raise OrchestratorHTTPError(
        400,
        "'prompt' is empty and this model's tokenizer has no start-of-document token to "
        "stand for it; send at least one character",
        param="prompt",
    )
