"""The cost-aware router end to end: decisions, headers, cost, ledger, budgets, load.

Uses real prompts from the shared data when present (skips those parts otherwise)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import sqlite3
import time

import httpx
import pytest

from orchestrator.paths import SHARED_DATA

from .conftest import reload_policy, wait_until_the_model_alone_prices

pytestmark = pytest.mark.e2e

FAMILY = "smollm2-135m-instruct"
PROFILES = {"smollm2-cpu", "smollm2-cpu-ngram"}


def _post(server, body, headers=None, timeout=300):
    return httpx.post(
        f"{server.base_url}/v1/chat/completions", json=body, headers=headers or {}, timeout=timeout
    )


def _chat(content: str, **extra) -> dict:
    return {
        "model": FAMILY,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        **extra,
    }


def test_response_says_what_was_decided_and_what_it_cost(server):
    r = _post(server, _chat("Name a colour.", max_tokens=8))
    assert r.status_code == 200, r.text
    h = r.headers
    assert h["x-orchestrator-profile"] in PROFILES
    p50, p90 = (int(x) for x in h["x-orchestrator-predicted-tokens"].split("/"))
    assert 0 < p50 <= p90 <= 8
    assert float(h["x-orchestrator-estimated-cost-usd"]) > 0
    assert h["x-orchestrator-decision"]
    usage = r.json()["usage"]
    assert usage["cost_usd"] > 0

    decision = httpx.get(f"{server.base_url}/v1/orchestrator/decisions/{h['x-request-id']}").json()
    assert decision["profile"] == h["x-orchestrator-profile"]
    assert {c["profile"] for c in decision["candidates"]} == PROFILES
    for c in decision["candidates"]:
        assert c["estimate"]["cost_usd"] > 0 and c["estimate"]["latency_ms"] > 0


def test_unknown_decision_is_404(server):
    r = httpx.get(f"{server.base_url}/v1/orchestrator/decisions/no-such-request")
    assert r.status_code == 404 and r.json()["error"]["code"] == "decision_not_found"


def test_streaming_carries_headers_and_cost_in_last_chunk(server):
    body = _chat(
        "Count to five.", max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    with httpx.stream(
        "POST", f"{server.base_url}/v1/chat/completions", json=body, timeout=300
    ) as r:
        assert r.status_code == 200
        assert r.headers["x-orchestrator-profile"] in PROFILES
        assert "x-orchestrator-estimated-cost-usd" in r.headers
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["usage"]["cost_usd"] > 0 and last["choices"] == []


# Default policy: on_cost_cap [cap_tokens, reject]. With its derived prices a target of
# $1e-5 affords a couple of dozen output tokens for this prompt (when `serve` binds each CPU
# engine to its own core, each profile's throughput halves and its price per token doubles: ~24
# tokens, above the cap floor of 16; without the binding ~48), fewer than the 200 asked for;
# $2e-8 does not even cover the prompt, so nothing can be capped and the request is refused.
STORY = "Write a long story about a dragon."
AFFORDS_A_FEW_TOKENS = "0.00001"


def _decision(server, response) -> dict:
    rid = response.headers["x-request-id"]
    return httpx.get(f"{server.base_url}/v1/orchestrator/decisions/{rid}").json()


def test_caller_cost_target_caps_tokens_as_the_policy_says(server):
    free = _post(server, _chat(STORY, max_tokens=200))
    assert free.status_code == 200
    capped = _post(
        server, _chat(STORY, max_tokens=200), headers={"X-Cost-Target-USD": AFFORDS_A_FEW_TOKENS}
    )
    assert capped.status_code == 200, capped.text
    assert capped.headers["x-orchestrator-decision"].startswith("cap_tokens")
    cap = _decision(server, capped)["max_tokens"]
    assert cap < 200
    assert capped.json()["usage"]["completion_tokens"] <= cap
    assert capped.json()["usage"]["completion_tokens"] < free.json()["usage"]["completion_tokens"]

    for target in ("0.00000002", "0"):
        refused = _post(server, _chat(STORY, max_tokens=200), headers={"X-Cost-Target-USD": target})
        assert refused.status_code == 402, refused.text
        assert refused.json()["error"]["code"] == "cost_target_unmet"

    bad = _post(server, _chat("hi"), headers={"X-Cost-Target-USD": "cheap"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "X-Cost-Target-USD"


def test_target_in_body_extension_is_honoured(server):
    body = _chat(STORY, max_tokens=200)
    body["orchestrator"] = {"cost_target_usd": float(AFFORDS_A_FEW_TOKENS)}
    r = _post(server, body)
    assert r.status_code == 200, r.text
    assert r.headers["x-orchestrator-decision"].startswith("cap_tokens")
    assert r.json()["usage"]["completion_tokens"] <= _decision(server, r)["max_tokens"] < 200


# every class's reference request tiny, so the load-time check accepts a tight TTFT target
_TINY = ", ".join(
    f"{c}: {{input_tokens: 1, output_tokens: 1}}"
    for c in ("standard", "long_form", "reasoning", "long_context")
)


def _tight_ttft_policy(original: str, *, reject: bool) -> str:
    """The server's policy with a 200 ms p95 TTFT target (and `on_slo_unmeetable: [reject]`)."""
    text = original.replace(
        "  max_tokens: 2048", "  max_tokens: 2048\n  latency: {ttft_p95_ms: 200}"
    )
    if reject:
        text = text.replace(
            "    on_budget_exhausted: [reject]",
            "    on_budget_exhausted: [reject]\n    on_slo_unmeetable: [reject]",
        )
    assert "ttft_p95_ms: 200" in text and (not reject or "on_slo_unmeetable" in text)
    return f"{text.rstrip()}\nreference_requests: {{{_TINY}}}\n"


def test_a_request_over_its_own_p95_ttft_estimate_is_served_unless_the_policy_rejects(server):
    """A p95 target is a share of requests: a long prompt whose own TTFT estimate (~0.8 s of
    prefill at 1,500 tokens/s) exceeds the 200 ms target is served on the closest profile,
    the miss recorded; only `actions.on_slo_unmeetable: [reject]` refuses it, naming that."""
    if server.policy_path is None:
        pytest.skip("needs a server this session started (its policy is rewritten)")
    original = server.policy_path.read_text()
    body = _chat("Summarise in one word: " + "the quick brown fox jumps. " * 200, max_tokens=4)
    try:
        reload_policy(server, _tight_ttft_policy(original, reject=False))
        served = _post(server, body)
        assert served.status_code == 200, served.text
        decision = _decision(server, served)
        assert decision["estimate"]["ttft_ms"] > 200
        assert "slo_ttft" in decision["misses"]
        assert "slo_ttft" in served.headers["x-orchestrator-decision"]

        reload_policy(server, _tight_ttft_policy(original, reject=True))
        refused = _post(server, body)
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "latency_slo_unmeetable"
        assert "actions.on_slo_unmeetable: reject" in error["message"]
    finally:
        reload_policy(server, original)


def test_burst_spreads_over_both_profiles(server):
    wait_until_the_model_alone_prices(server)

    def ask(i: int) -> httpx.Response:
        r = _post(server, _chat(f"Write two sentences about the number {i}.", max_tokens=48))
        assert r.status_code == 200, r.text
        return r

    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    chosen = [r.headers["x-orchestrator-profile"] for r in answers]
    if set(chosen) != PROFILES:  # say how each was priced
        estimates = [
            {c["profile"]: c["estimate"] for c in _decision(server, r)["candidates"]}
            for r in answers
        ]
        pytest.fail(f"live load moved nothing: {chosen}; estimates {estimates}")


def _shared_prompts(n: int) -> list[str]:
    candidates = sorted((SHARED_DATA / "alpaca-eval").glob("*.json"))
    if not candidates:
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    path = candidates[0]
    rows = json.loads(path.read_text())
    return [r["instruction"] for r in rows[:n]]


def test_real_prompts_predictions_follow_the_ask(server):
    """Short-answer vs long-form prompts: the predicted budget (and cost estimate) follows."""
    short = _post(server, _chat("Is the sky blue? Answer yes or no."))
    long = _post(
        server, _chat("Write a detailed 1000-word essay on the history of the Roman Empire.")
    )
    assert short.status_code == long.status_code == 200
    s50 = int(short.headers["x-orchestrator-predicted-tokens"].split("/")[0])
    l50 = int(long.headers["x-orchestrator-predicted-tokens"].split("/")[0])
    assert l50 > s50
    assert float(long.headers["x-orchestrator-estimated-cost-usd"]) > float(
        short.headers["x-orchestrator-estimated-cost-usd"]
    )
    for prompt in _shared_prompts(3):
        r = _post(server, _chat(prompt, max_tokens=32))
        assert r.status_code == 200 and r.headers["x-orchestrator-profile"] in PROFILES


def test_ledger_holds_one_row_per_finished_request(server):
    if server.policy_path is None:
        pytest.skip("external server: its ledger is not ours to read")
    ledger = server.state_dir / "usage.sqlite3"

    def rows() -> set[str]:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            return {r[0] for r in db.execute("select request_id from usage")}

    before = rows()
    ids = []
    for i in range(3):
        r = _post(server, _chat(f"Say the number {i}.", max_tokens=6))
        ids.append(r.headers["x-request-id"])
    deadline = time.monotonic() + 10
    while not set(ids) <= rows() and time.monotonic() < deadline:
        time.sleep(0.2)
    after = rows()
    assert set(ids) <= after and len(after - before) == 3


def _ledger_row(server, request_id: str, timeout_s: float = 30) -> dict | None:
    """The ledger row of `request_id` once written (the ingress writes it when the request
    ends), read-only from the server's own ledger file."""
    ledger = server.state_dir / "usage.sqlite3"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("select * from usage where request_id = ?", (request_id,)).fetchone()
        if row is not None:
            return dict(row)
        time.sleep(0.2)
    return None


def test_invalid_body_leaves_no_decision_and_no_ledger_row(server):
    if server.policy_path is None:
        pytest.skip("external server: its ledger is not ours to read")
    rid = f"e2e-invalid-{time.time_ns()}"
    r = _post(server, _chat("hi", temperature="hot"), headers={"X-Request-Id": rid})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
    assert r.headers.get_list("x-request-id") == [rid]
    decision = httpx.get(f"{server.base_url}/v1/orchestrator/decisions/{rid}")
    assert decision.status_code == 404  # never priced, so nothing was decided
    assert _ledger_row(server, rid, timeout_s=1) is None


def test_stream_cut_short_is_charged_for_the_tokens_it_carried(server):
    """A client that goes away mid-stream: the row says `cancelled` and charges the prompt and
    the tokens generated up to the disconnect (`ignore_eos` makes the answer long for sure)."""
    if server.policy_path is None:
        pytest.skip("external server: its ledger is not ours to read")
    rid = f"e2e-cut-{time.time_ns()}"
    body = _chat(STORY, max_tokens=400, stream=True, ignore_eos=True)
    received = 0
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/chat/completions",
        json=body,
        headers={"X-Request-Id": rid},
        timeout=300,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            assert "usage" not in chunk  # per-chunk usage is the ingress's, not shown
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                received += 1
                if received == 5:
                    break  # leaving the block closes the connection mid-stream
    row = _ledger_row(server, rid)
    assert row is not None, "no ledger row for the cut-short stream"
    assert row["status"] == "cancelled", row
    assert received <= row["output_tokens"] < 400, row
    assert row["prompt_tokens"] > 0 and row["cost_usd"] > 0, row
