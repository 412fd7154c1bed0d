"""The Files and Batches endpoints: OpenAI's wire contract over `orchestrator.batch`.

    POST /v1/files (multipart: file, purpose=batch)   GET /v1/files[/{id}[/content]]
    POST /v1/batches   GET /v1/batches[/{id}]   POST /v1/batches/{id}/cancel

Invariants: every call is authenticated as the interactive endpoints are, and a tenant sees
only its own files and jobs (another's id is 404); a job is validated whole before it is
stored: an unknown endpoint, a window over the tenant's `batch.max_completion_window`, an
input file that is not a batch file, or a line naming a model no profile serves is a 400
naming the field; a malformed line is not (it goes to the job's error file). Store calls
block for one round trip, so they run in worker threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from orchestrator.batch.lines import BatchLine, InputFileError, parse_input
from orchestrator.batch.protocol import CreateBatch, window_seconds
from orchestrator.batch.store import BatchStore, NotFound
from orchestrator.catalog.schema import Catalog
from orchestrator.policy import TenantPolicy
from orchestrator.serving.errors import OrchestratorHTTPError

MAX_LIST = 100
UPLOAD_PURPOSES = ("batch",)

Authenticate = Callable[[Mapping[str, str]], TenantPolicy]


class BatchApi:
    """The endpoints' logic (FastAPI-free: the ingress passes headers and parsed bodies)."""

    def __init__(
        self,
        store: BatchStore,
        catalog: Catalog,
        authenticate: Authenticate,
        *,
        offload: Callable[..., Awaitable[Any]] = asyncio.to_thread,
        clock: Callable[[], float] = time.time,
        paces: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.authenticate = authenticate
        self.offload = offload
        self.clock = clock
        self.paces = paces  # batch id -> its current pacing.Pace (predicted finish)

    # ----- files ----------------------------------------------------------------------
    async def upload(
        self, headers: Mapping[str, str], purpose: Any, filename: str | None, content: bytes
    ) -> dict[str, Any]:
        tenant = self.authenticate(headers)
        if purpose not in UPLOAD_PURPOSES:
            raise OrchestratorHTTPError(
                400, f"'purpose' must be one of {list(UPLOAD_PURPOSES)}", param="purpose",
                code="invalid_value",
            )  # fmt: skip
        if not content:
            raise OrchestratorHTTPError(400, "'file' is empty", param="file", code="invalid_file")
        name = filename or "upload.jsonl"
        found = await self.offload(self.store.put_file, tenant.name, purpose, name, content,
                                   self.clock())  # fmt: skip
        return found.model_dump()

    async def file(self, headers: Mapping[str, str], file_id: str) -> dict[str, Any]:
        tenant = self.authenticate(headers)
        return (await self._found("file", self.store.file, file_id, tenant.name)).model_dump()

    async def files(self, headers: Mapping[str, str], purpose: str | None) -> dict[str, Any]:
        tenant = self.authenticate(headers)
        found = await self.offload(self.store.files, tenant.name, purpose)
        return {"object": "list", "data": [f.model_dump() for f in found], "has_more": False}

    async def file_content(self, headers: Mapping[str, str], file_id: str) -> bytes:
        tenant = self.authenticate(headers)
        return await self._found("file", self.store.file_content, file_id, tenant.name)

    async def delete_file(self, headers: Mapping[str, str], file_id: str) -> dict[str, Any]:
        tenant = self.authenticate(headers)
        await self._found("file", self.store.delete_file, file_id, tenant.name)
        return {"id": file_id, "object": "file", "deleted": True}

    # ----- batches --------------------------------------------------------------------
    async def create(self, headers: Mapping[str, str], body: Any) -> dict[str, Any]:
        tenant = self.authenticate(headers)
        request = _create_request(body)
        limit = tenant.batch.max_completion_window or "24h"
        if window_seconds(request.completion_window) > window_seconds(limit):
            raise OrchestratorHTTPError(
                400,
                f"'completion_window' {request.completion_window} is longer than tenant "
                f"{tenant.name!r} may ask for ({limit}, policy field batch.max_completion_window)",
                param="completion_window", code="invalid_value",
            )  # fmt: skip
        content = await self._found(
            "input_file_id", self.store.file_content, request.input_file_id, tenant.name
        )
        try:
            parsed = parse_input(content, request.endpoint)
        except InputFileError as exc:
            raise OrchestratorHTTPError(
                400, f"'input_file_id': {exc}", param="input_file_id", code="invalid_file"
            ) from None
        self._check_models(parsed.lines)
        job = await self.offload(self.store.create_job, tenant.name, request, parsed,
                                 self.clock())  # fmt: skip
        return self._shown(job)

    async def get(self, headers: Mapping[str, str], batch_id: str) -> dict[str, Any]:
        tenant = self.authenticate(headers)
        job = await self._found("batch_id", self.store.job, batch_id, tenant.name)
        return self._shown(job)

    async def list(
        self, headers: Mapping[str, str], after: str | None, limit: int
    ) -> dict[str, Any]:
        tenant = self.authenticate(headers)
        if not 1 <= limit <= MAX_LIST:
            raise OrchestratorHTTPError(
                400, f"'limit' must be 1 to {MAX_LIST}", param="limit", code="invalid_value"
            )
        jobs = await self._found(
            "after", self.store.jobs, tenant.name, after=after, limit=limit + 1
        )
        shown = [self._shown(j) for j in jobs[:limit]]
        return {
            "object": "list",
            "data": shown,
            "first_id": shown[0]["id"] if shown else None,
            "last_id": shown[-1]["id"] if shown else None,
            "has_more": len(jobs) > limit,
        }

    async def cancel(self, headers: Mapping[str, str], batch_id: str) -> dict[str, Any]:
        tenant = self.authenticate(headers)
        job = await self._found("batch_id", self.store.cancel, batch_id, tenant.name, self.clock())
        return self._shown(job)

    # ----- helpers --------------------------------------------------------------------
    def _check_models(self, lines: list[BatchLine]) -> None:
        served = {"auto", *self.catalog.families, *(p.name for p in self.catalog.profiles)}
        for line in lines:
            if line.model not in served:
                raise OrchestratorHTTPError(
                    400,
                    f"line {line.number} of the input file: 'body.model' {line.model!r} is not "
                    f"served here (models: {sorted(served)})",
                    param="input_file_id", code="model_not_found",
                )  # fmt: skip

    def _shown(self, job: Any) -> dict[str, Any]:
        """The job as OpenAI shows it, plus `orchestrator.predicted_finish_at` (None until
        this replica's runner has paced it)."""
        pace = self.paces().get(job.id)
        finish = int(pace.predicted_finish) if pace is not None else None
        return {**job.model_dump(), "orchestrator": {"predicted_finish_at": finish}}

    async def _found(self, param: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` in a worker thread; 404 naming `param` when it finds nothing."""
        try:
            return await self.offload(fn, *args, **kwargs)
        except NotFound as exc:
            raise OrchestratorHTTPError(
                404, f"no {param.removesuffix('_id')} with id {exc.args[0]!r}", param=param,
                code="not_found",
            ) from None  # fmt: skip


def _create_request(body: Any) -> CreateBatch:
    try:
        return CreateBatch.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(x) for x in err.get("loc", ())) or None
        raise OrchestratorHTTPError(
            400, f"invalid '{param}': {err.get('msg')}", param=param, code="invalid_value"
        ) from None
