"""Wire shapes of OpenAI's Files and Batches API (what the `openai` client parses).

Invariants: timestamps are whole Unix seconds; ids carry OpenAI's prefixes (`file-`,
`batch_`, `batch_req_`); `completion_window` is `<N>h` or `<N>m` and is stored as seconds.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

BatchStatus = Literal[
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
]
# the states a job no longer moves out of
FINAL_STATES: frozenset[str] = frozenset({"failed", "completed", "expired", "cancelled"})
Endpoint = Literal["/v1/chat/completions", "/v1/completions", "/v1/responses"]
ENDPOINTS: tuple[str, ...] = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
_WINDOW = re.compile(r"^\s*(\d+)\s*([hm])\s*$")
MAX_METADATA_PAIRS = 16


def window_seconds(window: str) -> int:
    """`"24h"` -> 86400, `"90m"` -> 5400; ValueError for anything else (or zero)."""
    m = _WINDOW.match(window)
    if not m or int(m.group(1)) <= 0:
        raise ValueError("must be a whole number of hours or minutes, e.g. '24h' or '90m'")
    return int(m.group(1)) * (3600 if m.group(2) == "h" else 60)


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class RequestCounts(BaseModel):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchErrorItem(BaseModel):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchErrorItem] = Field(default_factory=list)


class BatchObject(BaseModel):
    """OpenAI's Batch object, plus `orchestrator` (the predicted finish, `batch_api.py`)."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    metadata: dict[str, str] | None = None
    orchestrator: dict[str, Any] | None = None


class CreateBatch(BaseModel):
    """The body of `POST /v1/batches`."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(min_length=1)
    endpoint: Endpoint
    completion_window: str
    metadata: dict[str, str] | None = None
    output_expires_after: dict[str, Any] | None = None  # accepted, files are kept as long

    @field_validator("completion_window")
    @classmethod
    def _window(cls, value: str) -> str:
        window_seconds(value)
        return value.strip()

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > MAX_METADATA_PAIRS:
            raise ValueError(f"at most {MAX_METADATA_PAIRS} pairs")
        for k, v in value.items():
            if len(k) > 64 or len(v) > 512:
                raise ValueError("keys are at most 64 characters, values at most 512")
        return value


def output_line(
    line_id: str, custom_id: str | None, status_code: int, request_id: str, body: Any
) -> dict[str, Any]:
    """One line of an output (2xx) or error (non-2xx) file, as OpenAI writes it."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": request_id, "body": body},
        "error": None,
    }


def invalid_line(line_id: str, custom_id: str | None, code: str, message: str) -> dict[str, Any]:
    """An error-file line for an input line that was never run (malformed, out of budget,
    cancelled, expired)."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
