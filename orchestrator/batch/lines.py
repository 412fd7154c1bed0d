"""A batch input file (JSONL) -> the lines to run and the lines that cannot run.

Each input line is `{"custom_id": str, "method": "POST", "url": <the batch's endpoint>,
"body": {...}}`. A malformed line never fails the job: it becomes a `LineError` (1-based line
number, the field as the client wrote it, why) that goes to the job's error file. What the
engine request model rejects (a bad `messages`, say) is found when the line runs, as the
interactive endpoint would answer it.

Invariants: blank lines are skipped but keep the numbering of the file; `custom_id`s are unique
within a file (a repeat is an error on the later line); a valid line's body never streams.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_LINES = 50_000
MAX_FILE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BatchLine:
    number: int  # 1-based line number in the input file
    custom_id: str
    body: dict[str, Any]

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None


@dataclass(frozen=True, slots=True)
class LineError:
    number: int
    custom_id: str | None
    param: str | None
    message: str

    def text(self) -> str:
        where = f"line {self.number}"
        return (
            f"{where}: '{self.param}': {self.message}" if self.param else f"{where}: {self.message}"
        )


@dataclass(frozen=True, slots=True)
class ParsedInput:
    lines: list[BatchLine]
    errors: list[LineError]

    @property
    def total(self) -> int:
        return len(self.lines) + len(self.errors)


class InputFileError(ValueError):
    """The file as a whole cannot be a batch input (not UTF-8, empty, too large)."""


def parse_input(content: bytes, endpoint: str) -> ParsedInput:
    """Every non-blank line of `content`, checked against `endpoint`."""
    if len(content) > MAX_FILE_BYTES:
        raise InputFileError(f"the input file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"the input file is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    lines: list[BatchLine] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    for number, raw in _numbered(text):
        if len(lines) + len(errors) >= MAX_LINES:
            raise InputFileError(f"the input file has more than {MAX_LINES} requests")
        parsed = _parse_line(number, raw, endpoint)
        if isinstance(parsed, BatchLine) and parsed.custom_id in seen:
            parsed = LineError(number, parsed.custom_id, "custom_id", "repeats an earlier line's")
        if isinstance(parsed, BatchLine):
            seen.add(parsed.custom_id)
            lines.append(parsed)
        else:
            errors.append(parsed)
    if not lines and not errors:
        raise InputFileError("the input file has no requests")
    return ParsedInput(lines, errors)


def _numbered(text: str) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            yield number, raw


def _parse_line(number: int, raw: str, endpoint: str) -> BatchLine | LineError:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        return LineError(number, None, None, f"not valid JSON ({exc.msg}, column {exc.colno})")
    if not isinstance(item, dict):
        return LineError(number, None, None, "must be a JSON object")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
        return LineError(number, None, "custom_id", "must be a string of 1 to 512 characters")
    if item.get("method", "POST") != "POST":
        return LineError(number, custom_id, "method", "must be 'POST'")
    url = item.get("url")
    if url != endpoint:
        return LineError(number, custom_id, "url", f"must be the batch's endpoint {endpoint!r}")
    body = item.get("body")
    if not isinstance(body, dict):
        return LineError(number, custom_id, "body", "must be a JSON object")
    if body.get("stream"):
        return LineError(number, custom_id, "body.stream", "a batch request cannot stream")
    unknown = sorted(set(item) - {"custom_id", "method", "url", "body"})
    if unknown:
        return LineError(number, custom_id, unknown[0], "is not a field of a batch request line")
    return BatchLine(number, custom_id, {k: v for k, v in body.items() if k != "stream_options"})
