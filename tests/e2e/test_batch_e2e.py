"""The Batch API on the real server with the official `openai` client: a 200-line job (one line
malformed) completes, its ingress replica is killed half-way and the job resumes; each answered
line is one ledger row under its request id, none run twice, none lost."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import time

import httpx
import pytest

pytestmark = pytest.mark.e2e

LINES = 200
BAD_LINE = 57  # 1-based: this input line is malformed (not JSON)


def _input_file(family: str) -> bytes:
    out = []
    for n in range(1, LINES + 1):
        if n == BAD_LINE:
            out.append('{"custom_id": "broken", "url": ')
            continue
        body = {"model": family, "max_tokens": 2, "temperature": 0,
                "messages": [{"role": "user", "content": f"Say the number {n}."}]}  # fmt: skip
        out.append(json.dumps({"custom_id": f"line-{n}", "method": "POST",
                               "url": "/v1/chat/completions", "body": body}))  # fmt: skip
    return ("\n".join(out) + "\n").encode()


def _ledger(server, prefix: str) -> dict[str, int]:
    ledger = server.state_dir / "usage.sqlite3"
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        rows = db.execute(
            "select request_id, count(*) from usage where request_id like ? group by request_id",
            (f"{prefix}%",),
        ).fetchall()
    return {rid: n for rid, n in rows}


def _wait_healthy(server, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise AssertionError("the ingress did not come back")


def test_a_batch_job_survives_its_ingress_and_charges_each_line_once(server, client, family):
    if server.policy_path is None:
        pytest.skip("external server: not ours to kill")
    uploaded = client.files.create(file=("lines.jsonl", io.BytesIO(_input_file(family))),
                                   purpose="batch")  # fmt: skip
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    job = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                completion_window="1h", metadata={"test": "e2e"})  # fmt: skip
    assert job.status == "in_progress" and job.request_counts.total == LINES

    killed = False
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        try:
            job = client.batches.retrieve(job.id)
        except Exception:  # the ingress is restarting
            time.sleep(2)
            continue
        if job.status in ("completed", "failed", "expired", "cancelled"):
            break
        if not killed and job.request_counts.completed >= LINES // 3:
            victims = server.ingress_processes()
            assert victims, "no ingress replica process found"
            victims[0].send_signal(signal.SIGKILL)
            killed = True
            time.sleep(5)
            _wait_healthy(server)
        time.sleep(2)
    assert killed, f"the job ended before half of it ran: {job}"
    assert job.status == "completed", job
    assert job.request_counts.total == LINES
    assert job.request_counts.completed + job.request_counts.failed == LINES

    output = [json.loads(x) for x in client.files.content(job.output_file_id).text.splitlines()]
    errors = [json.loads(x) for x in client.files.content(job.error_file_id).text.splitlines()]
    answered = {o["custom_id"]: o for o in output}
    assert len(answered) == len(output), "a line is in the output twice"
    expected = {f"line-{n}" for n in range(1, LINES + 1) if n != BAD_LINE}
    assert set(answered) | {e["custom_id"] for e in errors if e["custom_id"]} == expected
    assert any(e.get("line") == BAD_LINE for e in errors), errors
    for o in output:
        n = int(o["custom_id"].removeprefix("line-"))
        assert o["response"]["status_code"] == 200
        assert o["response"]["request_id"] == f"{job.id}-L{n}"
        assert o["response"]["body"]["choices"][0]["message"]["role"] == "assistant"

    # the ledger: one row per answered line, none for the malformed one
    rows: dict[str, int] = {}
    for _ in range(30):
        rows = _ledger(server, f"{job.id}-L")
        if set(rows) >= {o["response"]["request_id"] for o in output}:
            break
        time.sleep(1)
    assert all(n == 1 for n in rows.values()), "a line was charged twice"
    assert {o["response"]["request_id"] for o in output} <= set(rows), "an answered line has no row"
    assert f"{job.id}-L{BAD_LINE}" not in rows
