"""The batch tables and the values stored in them (see `store.py` for how they move).

Schema component `batch`: `batch_files` (uploads and the jobs' output and error files),
`batch_jobs` (one row a job), `batch_lines` (one row an input line, with its state, lease,
answer and cost).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from orchestrator.batch.protocol import (
    BatchErrorItem,
    BatchErrors,
    BatchObject,
    RequestCounts,
    output_line,
)
from orchestrator.storage import Migration

COMPONENT = "batch"
MIGRATIONS = (
    Migration(
        1,
        "batch: files, jobs and their lines",
        """
        CREATE TABLE IF NOT EXISTS batch_files (
            file_id TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            purpose TEXT NOT NULL,
            filename TEXT NOT NULL,
            created_at {float} NOT NULL,
            bytes INTEGER NOT NULL,
            content {blob} NOT NULL
        );
        CREATE TABLE IF NOT EXISTS batch_jobs (
            batch_id TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            input_file_id TEXT NOT NULL,
            completion_window TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at {float} NOT NULL,
            deadline {float} NOT NULL,
            in_progress_at {float},
            finalizing_at {float},
            completed_at {float},
            failed_at {float},
            expired_at {float},
            cancelling_at {float},
            cancelled_at {float},
            output_file_id TEXT,
            error_file_id TEXT,
            metadata TEXT,
            errors TEXT,
            stop_reason TEXT
        );
        CREATE INDEX IF NOT EXISTS batch_jobs_status ON batch_jobs (status);
        CREATE TABLE IF NOT EXISTS batch_lines (
            batch_id TEXT NOT NULL,
            line_no INTEGER NOT NULL,
            custom_id TEXT,
            body TEXT,
            state TEXT NOT NULL,
            owner TEXT,
            lease_until {float},
            attempts INTEGER NOT NULL DEFAULT 0,
            status_code INTEGER,
            result TEXT,
            cost_usd {float} NOT NULL DEFAULT 0,
            started_at {float},
            finished_at {float},
            PRIMARY KEY (batch_id, line_no)
        );
        CREATE INDEX IF NOT EXISTS batch_lines_state ON batch_lines (batch_id, state)
        """,
    ),
)

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
CANCELLED, EXPIRED = "cancelled", "expired"
OPEN_LINE_STATES = (PENDING, RUNNING)


class NotFound(LookupError):
    """No such file or job for this tenant."""


@dataclass(frozen=True, slots=True)
class ClaimedLine:
    batch_id: str
    line_no: int
    custom_id: str
    body: dict[str, Any]
    tenant: str
    endpoint: str
    attempts: int  # this claim included

    @property
    def request_id(self) -> str:
        """The line's request id: the ledger's idempotency key, so a line is charged once."""
        return f"{self.batch_id}-L{self.line_no}"


@dataclass(frozen=True, slots=True)
class ActiveJob:
    """A job with work left, what pacing needs of it."""

    batch_id: str
    tenant: str
    endpoint: str
    created_at: float
    deadline: float
    pending: int
    running: int
    done: int
    mean_line_s: float | None  # observed wall time per finished line, None before the first


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def job_object(row: tuple[Any, ...], counts: dict[str, int]) -> BatchObject:
    (batch_id, _tenant, endpoint, input_file_id, window, status, created_at, deadline,
     in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at,
     cancelled_at, output_file_id, error_file_id, metadata, errors, _stop) = row  # fmt: skip
    total = sum(counts.values())
    error_items = (
        BatchErrors(data=[BatchErrorItem(**e) for e in json.loads(errors)]) if errors else None
    )
    return BatchObject(
        id=batch_id,
        endpoint=endpoint,
        errors=error_items,
        input_file_id=input_file_id,
        completion_window=window,
        status=status,
        output_file_id=output_file_id,
        error_file_id=error_file_id,
        created_at=int(created_at),
        in_progress_at=_int(in_progress_at),
        expires_at=int(deadline),
        finalizing_at=_int(finalizing_at),
        completed_at=_int(completed_at),
        failed_at=_int(failed_at),
        expired_at=_int(expired_at),
        cancelling_at=_int(cancelling_at),
        cancelled_at=_int(cancelled_at),
        request_counts=RequestCounts(
            total=total,
            completed=counts.get(DONE, 0),
            failed=counts.get(FAILED, 0) + counts.get(CANCELLED, 0),
        ),
        metadata=json.loads(metadata) if metadata else None,
    )


JOB_COLUMNS = (
    "batch_id, tenant, endpoint, input_file_id, completion_window, status, created_at, deadline, "
    "in_progress_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at, "
    "cancelled_at, output_file_id, error_file_id, metadata, errors, stop_reason"
)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def line_id(batch_id: str, line_no: int) -> str:
    return f"batch_req_{batch_id.removeprefix('batch_')}_{line_no}"


def result_line(line: ClaimedLine, status_code: int, body: Any) -> dict[str, Any]:
    """A run line's entry of the output (2xx) or error file; an error carries its line."""
    result = output_line(
        line_id(line.batch_id, line.line_no), line.custom_id, status_code, line.request_id, body
    )
    if status_code >= 400:
        result["line"] = line.line_no
    return result
