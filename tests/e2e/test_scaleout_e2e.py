"""Two ingress replicas over one PostgreSQL (issue 19): the embedded default catalog on real vLLM
CPU engines, `orchestrator serve --ledger postgresql://... --ingress-min/max-replicas 2`.

One server start, then in order:
1. a tenant whose day budget covers about half of the requests sent;
2. a first burst: every decision is read back through the proxy until a replica other than
   the one that made it answers (`X-Orchestrator-Replica`);
3. a second burst of 100+ concurrent requests, one ingress replica SIGKILLed mid-way;
4. the ledger (read from PostgreSQL): spend within the budget plus one request's cost, every
   answered request exactly one row, every 429 a Retry-After, no row for a refused request.

Skips (with the reason) only when the PostgreSQL binaries or psycopg are missing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from orchestrator.paths import DEFAULT_DEPLOYMENTS
from tests.e2e.conftest import (
    E2E_API_KEY,
    RunningServer,
    start_server,
    stop_server,
    team_a_policy,
)
from tests.pg_server import PostgresServer, find_binaries

pytestmark = [pytest.mark.e2e, pytest.mark.own_server]

TENANT = "team-a"


def _policy(tag: str, budget: float) -> str:
    """team-a with a day budget of `budget`, refused once spent; 64 tokens per answer."""
    return team_a_policy(
        f"e2e-scaleout-{tag}",
        default="max_tokens: 64",
        team_a=f"budgets: {{per_day_usd: {budget}}}\nactions: {{on_budget_exhausted: [reject]}}",
    )


CHAT = {
    "model": "smollm2-cpu",  # one profile: every request costs the same
    "messages": [{"role": "user", "content": "Count from one to twenty."}],
    "max_tokens": 4,
    "temperature": 0,
    "ignore_eos": True,
}
FIRST_BURST = 12
SECOND_BURST = 108  # sent all at once
# the embedded catalog with room for the burst in admission (8 per replica there): the 429s
# seen are then the budget's, not overload shedding's
MAX_CONCURRENCY = 64


@pytest.fixture(scope="module")
def postgres():
    bin_dir = find_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: install Debian's postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]' psycopg-pool)")
    server = PostgresServer.start(bin_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scaled(postgres, tmp_path_factory):
    url = postgres.fresh_url()
    tmp = tmp_path_factory.mktemp("scaleout")
    catalog = tmp / "catalog.yaml"
    text = DEFAULT_DEPLOYMENTS.read_text()
    assert text.count("max_concurrency: 8") == 2
    catalog.write_text(text.replace("max_concurrency: 8", f"max_concurrency: {MAX_CONCURRENCY}"))
    args = ["--deployments", str(catalog), "--ledger", url]
    args += ["--ingress-min-replicas", "2", "--ingress-max-replicas", "2"]
    server = start_server(tmp, extra_args=args)
    try:
        yield server, url
    finally:
        stop_server(server)


def _headers(request_id: str | None = None) -> dict[str, str]:
    out = {"Authorization": f"Bearer {E2E_API_KEY}"}
    if request_id:
        out["X-Request-Id"] = request_id
    return out


def _wait_for_both_replicas(base: str, timeout_s: float = 120) -> set[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(seen) < 2:
        r = httpx.get(f"{base}/healthz", timeout=10)
        if r.status_code == 200:
            seen.add(r.headers["x-orchestrator-replica"])
        time.sleep(0.2)
    assert len(seen) == 2, f"only ingress replicas {seen} answered"
    return seen


def _set_policy(server: RunningServer, budget: str, tag: str, warm_id: str) -> None:
    """Write the policy and wait until every replica has loaded it: under the default policy
    (no keys) anyone reads the default tenant's decision `warm_id`; under this one the key is
    team-a's and the look-up is a 404, many times in a row through the proxy."""
    assert server.policy_path is not None
    server.policy_path.write_text(_policy(tag, budget))
    deadline, in_a_row = time.monotonic() + 60, 0
    while in_a_row < 20:
        assert time.monotonic() < deadline, "the policy edit was not loaded by every replica"
        r = httpx.get(f"{server.base_url}/v1/orchestrator/decisions/{warm_id}", headers=_headers())
        in_a_row = in_a_row + 1 if r.status_code == 404 else 0
        time.sleep(0.05)


async def _burst(base: str, ids: list[str], on_answer=None) -> dict[str, httpx.Response]:
    limits = httpx.Limits(max_connections=len(ids))
    gate = asyncio.Semaphore(len(ids))
    out: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(base_url=base, timeout=180, limits=limits) as client:

        async def one(request_id: str) -> None:
            async with gate:
                try:
                    r = await client.post(
                        "/v1/chat/completions", json=CHAT, headers=_headers(request_id)
                    )
                except httpx.HTTPError:  # the replica holding it was killed
                    return
                out[request_id] = r
                if on_answer is not None:
                    on_answer(len(out))

        await asyncio.gather(*(one(i) for i in ids))
    return out


def _ledger_rows(url: str) -> dict[str, list]:
    from orchestrator.ledger import UsageLedger

    ledger = UsageLedger(url)
    try:
        rows: dict[str, list] = {}
        for record in ledger.records(tenant=TENANT):
            rows.setdefault(record.request_id, []).append(record)
        return rows
    finally:
        ledger.close()


def test_two_ingress_replicas_share_budget_decisions_and_ledger(scaled):
    server, url = scaled
    base = server.base_url
    started = time.monotonic()
    replicas = _wait_for_both_replicas(base)

    # the cost of one request, measured by the default tenant (no budget, not team-a)
    warm = httpx.post(
        f"{base}/v1/chat/completions",
        json=CHAT,
        headers={"X-Request-Id": "scale-warm"},
        timeout=180,
    )
    assert warm.status_code == 200, warm.text
    cost = warm.json()["usage"]["cost_usd"]
    assert cost > 0
    total = FIRST_BURST + SECOND_BURST
    budget_text = f"{cost * total / 2:.15f}"  # about half of the requests sent (plain decimal:
    budget = float(budget_text)  # YAML reads "6e-05" as a string)
    _set_policy(server, budget_text, tag=str(os.getpid()), warm_id="scale-warm")

    # 2. decisions made on one replica are served by the other
    first_ids = [f"scale-a-{n}" for n in range(FIRST_BURST)]
    first = asyncio.run(_burst(base, first_ids))
    answered = {i: r for i, r in first.items() if r.status_code == 200}
    assert answered, {i: r.status_code for i, r in first.items()}
    assert {r.headers["x-orchestrator-replica"] for r in answered.values()} <= replicas
    crossed = 0
    for request_id, response in answered.items():
        maker = response.headers["x-orchestrator-replica"]
        for _ in range(30):
            look = httpx.get(f"{base}/v1/orchestrator/decisions/{request_id}", headers=_headers())
            assert look.status_code == 200, look.text  # found whichever replica answers
            assert look.json()["profile"] == response.headers["x-orchestrator-profile"]
            if look.headers["x-orchestrator-replica"] != maker:
                crossed += 1
                break
    assert crossed == len(answered), "a decision was never read on the other replica"

    # 3. a burst with one ingress replica killed mid-way
    victims = server.ingress_processes()
    assert len(victims) == 2, victims
    killed: list[int] = []

    def kill_once(done: int) -> None:
        if not killed and done >= SECOND_BURST // 4:
            victims[0].send_signal(signal.SIGKILL)
            killed.append(victims[0].pid)

    second_ids = [f"scale-b-{n}" for n in range(SECOND_BURST)]
    second = asyncio.run(_burst(base, second_ids, on_answer=kill_once))
    assert killed, "the replica was never killed"
    responses = {**first, **second}

    # 4. the ledger on PostgreSQL
    rows = _ledger_rows(url)
    ok = [i for i, r in responses.items() if r.status_code == 200]
    refused = [i for i, r in responses.items() if r.status_code == 429]
    assert ok and refused, {i: r.status_code for i, r in responses.items()}
    assert all(int(responses[i].headers["retry-after"]) >= 1 for i in refused)
    assert all(len(rows.get(i, [])) == 1 for i in ok), "an answered request lost its row"
    assert all(len(found) == 1 for found in rows.values()), "a row was written twice"
    assert not any(i in rows for i in refused), "a refused request left a row"
    spent = sum(found[0].cost_usd for found in rows.values())
    one_request = max(found[0].cost_usd for found in rows.values())
    assert spent <= budget + one_request + 1e-12, (spent, budget, one_request)
    codes = sorted({responses[i].json()["error"]["code"] for i in refused})
    assert "budget_exhausted" in codes, codes  # the budget was what refused them
    assert spent >= budget / 4, (spent, budget)  # and it was spent, not only held
    elapsed = time.monotonic() - started
    print(
        f"scale-out: {len(ok)} answered, {len(refused)} refused (429: {codes}), "
        f"{len(responses) - len(ok) - len(refused)} other, of {total}; spent ${spent:.8f} "
        f"of ${budget:.8f} (one request ${one_request:.8f}); {elapsed:.0f} s after start"
    )
