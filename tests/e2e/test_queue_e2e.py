"""Issue 27 end to end: nothing that waits in the ingress queue is lost (a client gone, a
shrunk bound, the engine killed), and a light tenant does not wait behind a heavy one.

One profile (`smollm2-cpu`, batch slots 8) is filled with long requests; more wait in the
ingress queue. One client goes away while queued; then a hot reload shrinks the tenant's queue
bound to 1. Every request ends served (one ledger row), refused with 429 and Retry-After (no
row), or cancelled by its client (no row: nothing was generated for it). Fairness: while the
heavy tenant holds every slot and has requests waiting, the light tenant's requests start at
once (fair headroom) and are answered while the heavy tenant's still wait.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import signal
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.e2e.conftest import E2E_API_KEY, RunningServer, reload_policy, team_a_policy
from tests.e2e.engine_procs import engine_pid, wait_profile_back
from tests.e2e.ledger_rows import ledger_rows, wait_rows

pytestmark = pytest.mark.e2e

PROFILE = "smollm2-cpu"
ONE_PROFILE = f"allowed_profiles: [{PROFILE}]"


def queue_policy(max_queued: int, short_work_tokens: int = 0) -> str:
    """One profile for everyone, the tenant's queue bounded at `max_queued`. The short lane
    is off unless asked for: whether an uncapped request takes it depends on its prediction,
    which the online calibration moves with the traffic earlier tests sent."""
    return (
        team_a_policy(f"e2e-queue-{max_queued}", default=ONE_PROFILE, team_a=ONE_PROFILE)
        + f"scheduling:\n  max_queued: {max_queued}\n"
        + f"  short_work_tokens: {short_work_tokens}\n"
    )


@contextlib.contextmanager
def _policy(server: RunningServer, text: str) -> Iterator[None]:
    """Serve under the policy `text`, the server's own restored after."""
    original = server.policy_path.read_text()
    reload_policy(server, text)
    try:
        yield
    finally:
        reload_policy(server, original)


def _queue(server: RunningServer) -> dict:
    status = httpx.get(f"{server.base_url}/v1/orchestrator/status", timeout=30).json()
    return status.get("queues", {}).get(PROFILE, {"busy": 0, "waiting": 0})


def _until(server: RunningServer, check, what: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        queue = _queue(server)
        if check(queue):
            return queue
        assert time.monotonic() < deadline, f"{what}: {queue}"
        time.sleep(0.3)


def _post(
    server: RunningServer, rid: str, max_tokens: int, timeout_s: float = 600, key: str = "any"
):
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Tell a long story about a lighthouse."}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
    }
    try:
        r = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json=body,
            headers={"X-Request-Id": rid, "Authorization": f"Bearer {key}"},
            timeout=timeout_s,
        )
    except httpx.TimeoutException:
        return rid, "gone", None
    return rid, r.status_code, r.headers.get("retry-after")


@pytest.fixture
def own(server: RunningServer) -> RunningServer:
    """The session's server when it is ours (its policy file and ledger to use)."""
    if server.policy_path is None:
        pytest.skip("external server: its policy and ledger are not ours")
    return server


def test_queued_requests_end_served_refused_or_cancelled_never_lost(own):
    server, tag = own, time.time_ns()
    with _policy(server, queue_policy(8)), cf.ThreadPoolExecutor(16) as pool:
        # long enough (256 tokens, EOS ignored) that the fillers hold the slots throughout
        fillers = [pool.submit(_post, server, f"q-fill-{tag}-{i}", 256) for i in range(8)]
        _until(server, lambda q: q["busy"] >= 8, "the fillers never took the 8 slots")
        queued = [pool.submit(_post, server, f"q-wait-{tag}-{i}", 100) for i in range(3)]
        _until(server, lambda q: q["waiting"] >= 3, "three requests never queued")
        leaver = pool.submit(_post, server, f"q-gone-{tag}", 100, timeout_s=5)
        assert leaver.result()[1] == "gone"  # the client gave up while its request waited
        _until(server, lambda q: q["waiting"] == 3, "the leaver stayed queued", 30)
        # the shrunk bound acts at the next request the ingress reads (any tenant)
        reload_policy(server, queue_policy(1))
        _post(server, f"q-trigger-{tag}", 1)
        results = [f.result() for f in fillers + queued]
    codes = {rid: code for rid, code, _ in results}
    assert all(codes[f"q-fill-{tag}-{i}"] == 200 for i in range(8)), codes
    waited = [(code, retry) for rid, code, retry in results if rid.startswith("q-wait")]
    assert sorted(code for code, _ in waited) == [200, 429, 429], waited
    assert all(int(retry) >= 1 for code, retry in waited if code == 429)
    served = [rid for rid, code in codes.items() if code == 200]
    rows = wait_rows(server, served)
    assert sorted(r["request_id"] for r in rows) == sorted(served)  # each exactly once
    not_served = [rid for rid, code in codes.items() if code != 200] + [f"q-gone-{tag}"]
    time.sleep(2)  # a row written late for a refused or cancelled request would show now
    assert ledger_rows(server, not_served) == []


def test_a_light_tenant_starts_at_once_beside_a_heavy_tenant_s_queue(own):
    server, tag = own, time.time_ns()
    with _policy(server, queue_policy(100)), cf.ThreadPoolExecutor(12) as pool:
        heavy = [pool.submit(_post, server, f"f-heavy-{tag}-{i}", 256) for i in range(10)]
        _until(server, lambda q: q["busy"] >= 8 and q["waiting"] >= 2, "no heavy queue")
        light = [_post(server, f"f-light-{tag}-{i}", 8, key=E2E_API_KEY) for i in range(2)]
        still = _queue(server)
        # no heavy request has ended: the light ones did not wait for a slot to free
        heavy_done = sum(f.done() for f in heavy)
        results = [f.result() for f in heavy]
    assert [code for _, code, _ in light] == [200, 200], light
    # answered while the heavy tenant's requests were still waiting for a slot
    assert heavy_done == 0 and still["waiting"] >= 2, (heavy_done, still)
    assert all(code == 200 for _, code, _ in results), results


def test_a_capped_short_request_takes_a_free_seat_while_the_tenant_s_longer_ones_wait(own):
    """The short lane on the real server: the 8 batch slots are full and the same tenant's
    long requests wait for one; a request capped at 8 tokens (its work is at most its cap
    plus prompt/16, within the lane's 64 whatever the prediction) starts in one of the
    engine's free seats (16) and is answered before any long one ends."""
    server, tag = own, time.time_ns()
    with (
        _policy(server, queue_policy(100, short_work_tokens=64)),
        cf.ThreadPoolExecutor(12) as pool,
    ):
        longs = [pool.submit(_post, server, f"s-long-{tag}-{i}", 256) for i in range(10)]
        _until(server, lambda q: q["busy"] >= 8 and q["waiting"] >= 2, "no queue of longs")
        short = _post(server, f"s-short-{tag}", 8)
        still, longs_done = _queue(server), sum(f.done() for f in longs)
        results = [f.result() for f in longs]
    assert short[1] == 200, short
    assert longs_done == 0 and still["waiting"] >= 2, (longs_done, still)
    assert all(code == 200 for _, code, _ in results), results
    rows = wait_rows(server, [short[0]])
    assert [r["request_id"] for r in rows] == [short[0]]


def _ask(server: RunningServer, rid: str, max_tokens: int) -> tuple[str, int, str | None, str]:
    """(id, status, Retry-After, error code) of one request of the default tenant."""
    r = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={
            "model": "auto",
            "messages": [{"role": "user", "content": "Tell a long story about a lighthouse."}],
            "max_tokens": max_tokens,
            "ignore_eos": True,
        },
        headers={"X-Request-Id": rid, "Authorization": "Bearer any"},
        timeout=600,
    )
    code = r.json().get("error", {}).get("code", "") if r.status_code != 200 else ""
    return rid, r.status_code, r.headers.get("retry-after"), code


def test_requests_queued_for_an_engine_that_dies_are_handed_back_never_lost(own):
    """The only profile the tenant may use loses its engine (SIGKILL) while 8 requests run on
    it and 3 wait: the waiters leave the queue at once with 429 `profile_lost` and a
    Retry-After (no ledger row: nothing was generated for them); each running request ends
    answered or with a 503, one ledger row each; no 500; the queue is empty after."""
    server, tag = own, time.time_ns()
    try:
        with _policy(server, queue_policy(8)), cf.ThreadPoolExecutor(16) as pool:
            runners = [pool.submit(_ask, server, f"k-run-{tag}-{i}", 256) for i in range(8)]
            _until(server, lambda q: q["busy"] >= 8, "the runners never took the 8 slots")
            waiters = [pool.submit(_ask, server, f"k-wait-{tag}-{i}", 100) for i in range(3)]
            _until(server, lambda q: q["waiting"] >= 3, "three requests never queued")
            psutil.Process(engine_pid(PROFILE)).send_signal(signal.SIGKILL)
            waited = [f.result() for f in waiters]
            ran = [f.result() for f in runners]
            _until(server, lambda q: q["waiting"] == 0, "requests left in the queue", 30)
    finally:
        back = wait_profile_back(server.base_url, PROFILE)
    assert all(code == 429 and err == "profile_lost" for _, code, _, err in waited), waited
    assert all(int(retry) >= 1 for _, _, retry, _ in waited)
    assert all(code in (200, 503) for _, code, _, _ in ran), ran
    rows = wait_rows(server, [rid for rid, *_ in ran])
    assert sorted(r["request_id"] for r in rows) == sorted(rid for rid, *_ in ran)
    time.sleep(2)  # a row written late for a handed-back request would show now
    assert ledger_rows(server, [rid for rid, *_ in waited]) == []
    assert back, f"{PROFILE} did not come back after its engine was killed"
