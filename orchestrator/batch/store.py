"""Batch files, jobs and lines in the storage layer, shared by every ingress replica.

    store = BatchStore(db)
    f = store.put_file("acme", "batch", "in.jsonl", content, now)
    job = store.create_job("acme", CreateBatch(...), parsed, now)       # lines stored pending
    claimed = store.claim(job.id, owner, 4, now, lease_s=60)             # pending -> running
    store.finish_line(claimed[0], owner, "done", 200, body, cost, now)   # running -> done
    store.finalize_ready(now)                                           # output + error files

A line moves pending -> running (leased by one replica) -> done | failed, or pending ->
cancelled / expired / failed (budget). Invariants:
- a line is claimed by one owner at a time (claims run under one lock); a lease that lapses
  (its replica died) puts the line back to pending, so a restart or a lost replica resumes the
  job; `finish_line` only lands for the owner holding the lease, so no line is finished twice;
- a job is finalized once (under its own lock): its output file holds the done lines and its
  error file the failed ones, each in input order; counts are read from the lines, never kept
  twice;
- files and jobs are read only by the tenant that created them (another's id is "not found").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from orchestrator.batch.lines import ParsedInput
from orchestrator.batch.protocol import (
    FINAL_STATES,
    BatchObject,
    CreateBatch,
    FileObject,
    invalid_line,
    window_seconds,
)
from orchestrator.batch.schema import (
    CANCELLED,
    COMPONENT,
    DONE,
    FAILED,
    JOB_COLUMNS,
    MIGRATIONS,
    OPEN_LINE_STATES,
    PENDING,
    RUNNING,
    ActiveJob,
    ClaimedLine,
    NotFound,
    job_object,
    line_id,
    new_id,
    result_line,
)
from orchestrator.storage import Database, migrate

__all__ = ["DONE", "FAILED", "ActiveJob", "BatchStore", "ClaimedLine", "NotFound"]


class BatchStore:
    """Files, jobs and lines in `db` (schema component `batch`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, COMPONENT, MIGRATIONS)

    # ----- files ----------------------------------------------------------------------
    def put_file(
        self, tenant: str, purpose: str, filename: str, content: bytes, now: float
    ) -> FileObject:
        file_id = new_id("file-")
        with self.db.transaction() as tx:
            self._insert_file(tx, file_id, tenant, purpose, filename, content, now)
        return FileObject(
            id=file_id, bytes=len(content), created_at=int(now), filename=filename, purpose=purpose
        )

    @staticmethod
    def _insert_file(
        tx: Any, file_id: str, tenant: str, purpose: str, name: str, content: bytes, now: float
    ) -> None:
        tx.execute(
            "INSERT INTO batch_files (file_id, tenant, purpose, filename, created_at, bytes, "
            "content) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (file_id, tenant, purpose, name, now, len(content), content),
        )

    def file(self, file_id: str, tenant: str) -> FileObject:
        rows = self.db.query(
            "SELECT file_id, purpose, filename, created_at, bytes FROM batch_files "
            "WHERE file_id = ? AND tenant = ?",
            (file_id, tenant),
        )
        if not rows:
            raise NotFound(file_id)
        fid, purpose, filename, created_at, size = rows[0]
        return FileObject(
            id=fid, bytes=int(size), created_at=int(created_at), filename=filename, purpose=purpose
        )

    def files(self, tenant: str, purpose: str | None = None) -> list[FileObject]:
        sql = "SELECT file_id FROM batch_files WHERE tenant = ?"
        params: list[Any] = [tenant]
        if purpose:
            sql += " AND purpose = ?"
            params.append(purpose)
        rows = self.db.query(sql + " ORDER BY created_at DESC", params)
        return [self.file(r[0], tenant) for r in rows]

    def file_content(self, file_id: str, tenant: str) -> bytes:
        rows = self.db.query(
            "SELECT content FROM batch_files WHERE file_id = ? AND tenant = ?", (file_id, tenant)
        )
        if not rows:
            raise NotFound(file_id)
        return bytes(rows[0][0])

    def delete_file(self, file_id: str, tenant: str) -> None:
        with self.db.transaction() as tx:
            cur = tx.execute(
                "DELETE FROM batch_files WHERE file_id = ? AND tenant = ?", (file_id, tenant)
            )
            if cur.rowcount == 0:
                raise NotFound(file_id)

    # ----- jobs -----------------------------------------------------------------------
    def create_job(
        self, tenant: str, request: CreateBatch, parsed: ParsedInput, now: float
    ) -> BatchObject:
        """Store the job (in progress) with every line: valid ones pending, malformed ones
        failed with their error (they go to the error file)."""
        batch_id = new_id("batch_")
        deadline = now + window_seconds(request.completion_window)
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO batch_jobs (batch_id, tenant, endpoint, input_file_id, "
                "completion_window, status, created_at, deadline, in_progress_at, metadata) "
                "VALUES (?, ?, ?, ?, ?, 'in_progress', ?, ?, ?, ?)",
                (
                    batch_id,
                    tenant,
                    request.endpoint,
                    request.input_file_id,
                    request.completion_window,
                    now,
                    deadline,
                    now,
                    json.dumps(request.metadata) if request.metadata is not None else None,
                ),
            )
            rows: list[tuple[Any, ...]] = [
                (batch_id, ln.number, ln.custom_id, json.dumps(ln.body), PENDING, None, None)
                for ln in parsed.lines
            ]
            for err in parsed.errors:
                bad = invalid_line(line_id(batch_id, err.number), err.custom_id,
                                   "invalid_request", err.text())  # fmt: skip
                bad["line"] = err.number
                rows.append(
                    (batch_id, err.number, err.custom_id, None, FAILED, json.dumps(bad), now)
                )
            tx.executemany(
                "INSERT INTO batch_lines (batch_id, line_no, custom_id, body, state, result, "
                "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return self.job(batch_id, tenant)

    def job(self, batch_id: str, tenant: str | None = None) -> BatchObject:
        """The job as OpenAI shows it (`tenant` None: any tenant's, for the runner)."""
        sql = f"SELECT {JOB_COLUMNS} FROM batch_jobs WHERE batch_id = ?"
        params: list[Any] = [batch_id]
        if tenant is not None:
            sql += " AND tenant = ?"
            params.append(tenant)
        rows = self.db.query(sql, params)
        if not rows:
            raise NotFound(batch_id)
        return job_object(rows[0], self.line_counts(batch_id))

    def jobs(self, tenant: str, *, after: str | None = None, limit: int = 20) -> list[BatchObject]:
        """The tenant's jobs, newest first; `after` is the last id of the previous page."""
        sql = f"SELECT {JOB_COLUMNS} FROM batch_jobs WHERE tenant = ?"
        params: list[Any] = [tenant]
        if after is not None:
            found = self.db.query(
                "SELECT created_at FROM batch_jobs WHERE batch_id = ? AND tenant = ?",
                (after, tenant),
            )
            if not found:
                raise NotFound(after)
            sql += " AND (created_at < ? OR (created_at = ? AND batch_id < ?))"
            params += [found[0][0], found[0][0], after]
        rows = self.db.query(sql + " ORDER BY created_at DESC, batch_id DESC LIMIT ?",
                             [*params, limit])  # fmt: skip
        return [job_object(r, self.line_counts(r[0])) for r in rows]

    def line_counts(self, batch_id: str) -> dict[str, int]:
        rows = self.db.query(
            "SELECT state, COUNT(*) FROM batch_lines WHERE batch_id = ? GROUP BY state",
            (batch_id,),
        )
        return {state: int(n) for state, n in rows}

    def cost_usd(self, batch_id: str) -> float:
        rows = self.db.query(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM batch_lines WHERE batch_id = ?", (batch_id,)
        )
        return float(rows[0][0])

    def cancel(self, batch_id: str, tenant: str, now: float) -> BatchObject:
        """Pending lines are cancelled at once; running ones finish; the job is `cancelling`
        until they have, then `cancelled` (by `finalize_ready`)."""
        with self.db.transaction() as tx:
            tx.lock(f"batch:{batch_id}")
            row = tx.execute(
                "SELECT status FROM batch_jobs WHERE batch_id = ? AND tenant = ?",
                (batch_id, tenant),
            ).fetchone()
            if row is None:
                raise NotFound(batch_id)
            if row[0] not in FINAL_STATES and row[0] != "cancelling":
                tx.execute(
                    "UPDATE batch_jobs SET status = 'cancelling', cancelling_at = ? "
                    "WHERE batch_id = ?",
                    (now, batch_id),
                )
                tx.execute(
                    "UPDATE batch_lines SET state = ?, finished_at = ? "
                    "WHERE batch_id = ? AND state = ?",
                    (CANCELLED, now, batch_id, PENDING),
                )
        return self.job(batch_id, tenant)

    def stop(self, batch_id: str, code: str, message: str, now: float) -> None:
        """End a job early (its budget ran out): pending lines fail with `code`, and the
        reason is in the job's errors and every such line's error-file entry."""
        with self.db.transaction() as tx:
            tx.lock(f"batch:{batch_id}")
            row = tx.execute(
                "SELECT status FROM batch_jobs WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if row is None or row[0] in FINAL_STATES:
                return
            self._fail_pending(tx, batch_id, code, message, now)
            tx.execute(
                "UPDATE batch_jobs SET stop_reason = ?, errors = ? WHERE batch_id = ?",
                (code, json.dumps([{"code": code, "message": message}]), batch_id),
            )

    def _fail_pending(self, tx: Any, batch_id: str, code: str, message: str, now: float) -> None:
        pending = tx.execute(
            "SELECT line_no, custom_id FROM batch_lines WHERE batch_id = ? AND state = ?",
            (batch_id, PENDING),
        ).fetchall()
        for line_no, custom_id in pending:
            bad = invalid_line(line_id(batch_id, int(line_no)), custom_id, code, message)
            bad["line"] = int(line_no)
            tx.execute(
                "UPDATE batch_lines SET state = ?, result = ?, finished_at = ? "
                "WHERE batch_id = ? AND line_no = ? AND state = ?",
                (FAILED, json.dumps(bad), now, batch_id, line_no, PENDING),
            )

    # ----- lines (the runner's side) --------------------------------------------------
    def active_jobs(self, now: float) -> list[ActiveJob]:
        """Jobs still in progress, earliest deadline first."""
        rows = self.db.query(
            "SELECT j.batch_id, j.tenant, j.endpoint, j.created_at, j.deadline, "
            "SUM(CASE WHEN l.state = 'pending' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN l.state = 'running' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN l.state = 'done' THEN 1 ELSE 0 END), "
            "AVG(CASE WHEN l.state = 'done' THEN l.finished_at - l.started_at END) "
            "FROM batch_jobs j JOIN batch_lines l ON l.batch_id = j.batch_id "
            "WHERE j.status IN ('in_progress', 'cancelling') "
            "GROUP BY j.batch_id, j.tenant, j.endpoint, j.created_at, j.deadline "
            "ORDER BY j.deadline, j.batch_id"
        )
        return [
            ActiveJob(
                bid,
                tenant,
                endpoint,
                float(created),
                float(deadline),
                int(p or 0),
                int(r or 0),
                int(d or 0),
                float(mean) if mean is not None else None,
            )  # fmt: skip
            for bid, tenant, endpoint, created, deadline, p, r, d, mean in rows
        ]

    def reclaim_lapsed(self, now: float) -> int:
        """Lines whose lease lapsed (their replica died or restarted) go back to pending.
        Reads first: the common tick finds none and takes no write lock."""
        lapsed = self.db.query(
            "SELECT COUNT(*) FROM batch_lines WHERE state = ? AND lease_until < ?", (RUNNING, now)
        )
        if not lapsed or not int(lapsed[0][0]):
            return 0
        with self.db.transaction() as tx:
            tx.lock("batch-claim")
            cur = tx.execute(
                "UPDATE batch_lines SET state = ?, owner = NULL, lease_until = NULL "
                "WHERE state = ? AND lease_until < ?",
                (PENDING, RUNNING, now),
            )
            return max(0, int(cur.rowcount))

    def claim(
        self, batch_id: str, owner: str, count: int, now: float, *, lease_s: float
    ) -> list[ClaimedLine]:
        """Up to `count` pending lines of the job, in input order, leased to `owner`."""
        if count <= 0:
            return []
        with self.db.transaction() as tx:
            tx.lock("batch-claim")
            job = tx.execute(
                "SELECT tenant, endpoint, status FROM batch_jobs WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if job is None or job[2] != "in_progress":
                return []
            rows = tx.execute(
                "SELECT line_no, custom_id, body, attempts FROM batch_lines "
                "WHERE batch_id = ? AND state = ? ORDER BY line_no LIMIT ?",
                (batch_id, PENDING, count),
            ).fetchall()
            for line_no, *_ in rows:
                tx.execute(
                    "UPDATE batch_lines SET state = ?, owner = ?, lease_until = ?, "
                    "attempts = attempts + 1, started_at = ? WHERE batch_id = ? AND line_no = ?",
                    (RUNNING, owner, now + lease_s, now, batch_id, line_no),
                )
        return [
            ClaimedLine(batch_id, int(n), cid, json.loads(body), job[0], job[1], int(a) + 1)
            for n, cid, body, a in rows
        ]

    def renew(self, lines: Iterable[ClaimedLine], owner: str, until: float) -> None:
        keys = [(until, ln.batch_id, ln.line_no, owner) for ln in lines]
        if not keys:
            return
        with self.db.transaction() as tx:
            tx.executemany(
                "UPDATE batch_lines SET lease_until = ? WHERE batch_id = ? AND line_no = ? "
                "AND owner = ? AND state = 'running'",
                keys,
            )

    def release(self, line: ClaimedLine, owner: str) -> None:
        """Give a claimed line back (to run later: the server was overloaded, say)."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE batch_lines SET state = ?, owner = NULL, lease_until = NULL "
                "WHERE batch_id = ? AND line_no = ? AND owner = ? AND state = ?",
                (PENDING, line.batch_id, line.line_no, owner, RUNNING),
            )

    def finish_line(
        self,
        line: ClaimedLine,
        owner: str,
        state: str,
        status_code: int,
        body: Any,
        cost_usd: float,
        now: float,
    ) -> bool:
        """Record a run line's answer; False (nothing written) if `owner` no longer holds it."""
        result = result_line(line, status_code, body)
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE batch_lines SET state = ?, status_code = ?, result = ?, cost_usd = ?, "
                "finished_at = ?, owner = NULL, lease_until = NULL "
                "WHERE batch_id = ? AND line_no = ? AND owner = ? AND state = ?",
                (
                    state,
                    status_code,
                    json.dumps(result),
                    cost_usd,
                    now,
                    line.batch_id,
                    line.line_no,
                    owner,
                    RUNNING,
                ),  # fmt: skip
            )
            return cur.rowcount == 1

    def expire_overdue(self, now: float) -> list[str]:
        """Jobs past their deadline: pending lines fail `batch_expired` (running ones finish);
        returns their ids."""
        rows = self.db.query(
            "SELECT batch_id FROM batch_jobs WHERE status = 'in_progress' AND deadline < ?",
            (now,),
        )
        for (batch_id,) in rows:
            with self.db.transaction() as tx:
                tx.lock(f"batch:{batch_id}")
                self._fail_pending(
                    tx, batch_id, "batch_expired", "the job's completion window ended first", now
                )
                tx.execute(
                    "UPDATE batch_jobs SET stop_reason = 'batch_expired' "
                    "WHERE batch_id = ? AND stop_reason IS NULL",
                    (batch_id,),
                )
        return [r[0] for r in rows]

    def finalize_ready(self, now: float) -> list[str]:
        """Write the files of every job with no pending or running line, once; its ids."""
        rows = self.db.query(
            "SELECT j.batch_id FROM batch_jobs j WHERE j.status IN ('in_progress', "
            "'cancelling') AND NOT EXISTS (SELECT 1 FROM batch_lines l WHERE "
            "l.batch_id = j.batch_id AND l.state IN ('pending', 'running'))"
        )
        done = []
        for (batch_id,) in rows:
            if self._finalize(batch_id, now):
                done.append(batch_id)
        return done

    def _finalize(self, batch_id: str, now: float) -> bool:
        with self.db.transaction() as tx:
            tx.lock(f"batch:{batch_id}")
            job = tx.execute(
                "SELECT tenant, status, stop_reason FROM batch_jobs WHERE batch_id = ?",
                (batch_id,),
            ).fetchone()
            if job is None or job[1] in FINAL_STATES:
                return False
            tenant, status, stop_reason = job
            lines = tx.execute(
                "SELECT state, result FROM batch_lines WHERE batch_id = ? ORDER BY line_no",
                (batch_id,),
            ).fetchall()
            if any(state in OPEN_LINE_STATES for state, _ in lines):
                return False
            output = [r for s, r in lines if s == DONE and r]
            errors = [r for s, r in lines if s == FAILED and r]
            out_id = self._write_lines(tx, tenant, batch_id, "output", output, now)
            err_id = self._write_lines(tx, tenant, batch_id, "errors", errors, now)
            final = (
                "cancelled"
                if status == "cancelling"
                else "expired"
                if stop_reason == "batch_expired"
                else "failed"
                if stop_reason
                else "completed"
            )
            stamp = {"cancelled": "cancelled_at", "expired": "expired_at",
                     "failed": "failed_at", "completed": "completed_at"}[final]  # fmt: skip
            tx.execute(
                f"UPDATE batch_jobs SET status = ?, finalizing_at = ?, {stamp} = ?, "
                "output_file_id = ?, error_file_id = ? WHERE batch_id = ?",
                (final, now, now, out_id, err_id, batch_id),
            )
        return True

    def _write_lines(
        self, tx: Any, tenant: str, batch_id: str, kind: str, lines: list[str], now: float
    ) -> str | None:
        if not lines:
            return None
        content = ("\n".join(lines) + "\n").encode()
        file_id = new_id("file-")
        name = f"{batch_id}_{kind}.jsonl"
        self._insert_file(tx, file_id, tenant, "batch_output", name, content, now)
        return file_id

    def summary(self) -> dict[str, Any]:
        """Jobs by state and lines by state over every tenant (status and metrics)."""
        jobs = self.db.query("SELECT status, COUNT(*) FROM batch_jobs GROUP BY status")
        lines = self.db.query(
            "SELECT l.state, COUNT(*) FROM batch_lines l JOIN batch_jobs j "
            "ON j.batch_id = l.batch_id WHERE j.status IN ('in_progress', 'cancelling') "
            "GROUP BY l.state"
        )
        return {
            "jobs": {s: int(n) for s, n in jobs},
            "active_lines": {s: int(n) for s, n in lines},
        }

    # ----- helpers --------------------------------------------------------------------
