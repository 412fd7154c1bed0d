"""SIGTERM stops everything `serve` started. Marked `stops_server`: the e2e conftest runs it
after every other test of the session, whatever the file order."""

from __future__ import annotations

import contextlib
import time

import psutil
import pytest

from tests.e2e.conftest import stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.stops_server]


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_sigterm_stops_ray_and_engines_and_exits_cleanly(server):
    if server.policy_path is None:
        pytest.skip("external server (ORCHESTRATOR_E2E_URL): not ours to stop")
    server.snapshot_descendants()
    started = set(server.descendants)
    names = set()
    for pid in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            names.add(psutil.Process(pid).name())
    assert any("raylet" in n for n in names), names  # we did start a local Ray
    assert stop_server(server) == 0, server.log_tail()
    deadline = time.monotonic() + 30
    while _alive(started) and time.monotonic() < deadline:
        time.sleep(1)
    leftover = _alive(started)
    details = []
    for pid in leftover:
        with contextlib.suppress(psutil.NoSuchProcess):
            details.append(" ".join(psutil.Process(pid).cmdline())[:120])
    assert not leftover, f"processes left behind: {details}"
    assert "stopped" in server.log_tail(20)


def test_usage_ledger_outlives_the_server(server):
    """After the stop, the ledger file holds every served request, intact (restart-safe)."""
    if server.policy_path is None:
        pytest.skip("external server")
    assert server.proc.poll() is not None, "runs after the SIGTERM test"
    from orchestrator.ledger import UsageLedger

    ledger = UsageLedger(server.state_dir / "usage.sqlite3", readonly=True)
    assert ledger.integrity_ok()
    assert ledger.count() >= 10  # the e2e modules before this one served more than that
    assert all(r.cost_usd >= 0 for r in ledger.records())
