"""A profile with no replica on the server: closed (routable at its opening price, a new
request waiting its start-up) while a replica may be started; opening while one starts;
unhealthy only when broken or not allowed to open (policy bounds, spend ceiling). The live
state is the simulator's own (`request.live.live_state`)."""

from __future__ import annotations

import asyncio
import json

import pytest

from orchestrator.request import live
from tests.serving.conftest import LOCAL, MESSAGES, POLICY_TEXT, serve_body, use_policy

CLOSED = "smollm2-cpu"
OPEN = "smollm2-cpu-ngram"
NEVER = "{min_replicas: 0, max_replicas: 0}"  # the policy disables the profile


def _scaled_to_zero(ex, name: str = CLOSED) -> None:
    """What the ingress's refresh loop sets for a deployment Serve runs no replica of."""
    ex.running[name] = 0
    ex.ready[name] = False


def _live(ex, name: str = CLOSED):
    views = ex.views_now(ex.policy_source.current)
    return next(v for v in views if v.name == name)


def test_a_profile_at_zero_that_may_open_is_closed_not_unhealthy(ingress):
    _scaled_to_zero(ingress)
    view = _live(ingress)
    profile, policy = LOCAL.profile(CLOSED), ingress.policy_source.current
    assert view.live.healthy and view.live.replicas_running == 0
    assert view.live.opening_usd == pytest.approx(live.opening_usd(profile, policy, 0.0))
    assert view.live.opening_usd > 0
    # it waits its whole start-up: the catalog's replicas.startup_s
    assert view.live.start_wait_ms is None
    assert view.performance.cold_start_ms == 1000.0 * profile.replicas.startup_s
    assert _live(ingress, OPEN).live.opening_usd == 0.0  # an open one costs no opening


def test_a_starting_replica_is_waited_for_and_not_priced_as_an_opening(ingress):
    _scaled_to_zero(ingress)
    ingress.starting[CLOSED] = 1
    first = _live(ingress).live
    assert first.healthy and first.opening_usd == 0.0
    startup_ms = 1000.0 * LOCAL.profile(CLOSED).replicas.startup_s
    assert first.start_wait_ms is not None and 0 < first.start_wait_ms <= startup_ms
    assert _live(ingress).live.start_wait_ms <= first.start_wait_ms  # the start-up left


def test_requests_already_waiting_for_a_replica_are_not_an_opening(ingress):
    _scaled_to_zero(ingress)
    ingress.load.begin("earlier", "others", CLOSED, 0.0)  # held by Serve for the replica
    state = _live(ingress).live
    assert state.healthy and state.opening_usd == 0.0 and state.requests_queued == 1


def test_a_broken_profile_stays_unhealthy(ingress):
    _scaled_to_zero(ingress)
    ingress.failed[CLOSED] = True  # the deployment failed or cannot be placed
    assert not _live(ingress).live.healthy
    ingress.failed[CLOSED] = False
    ingress.engine_down(CLOSED, "engine died")  # a failure this ingress saw
    assert not _live(ingress).live.healthy


def test_a_profile_the_policy_may_not_open_is_unhealthy(ingress):
    use_policy(ingress, POLICY_TEXT + f"autoscaling: {{profiles: {{{CLOSED}: {NEVER}}}}}\n")
    _scaled_to_zero(ingress)
    state = _live(ingress).live
    assert not state.healthy and state.opening_usd == 0.0


async def test_a_request_only_a_closed_profile_serves_is_routed_there_and_explained(
    ingress, chat_completion
):
    _scaled_to_zero(ingress)
    ingress.handle.streams.append(chat_completion())
    body = {"model": CLOSED, "messages": MESSAGES}
    response = await serve_body(ingress, body, "chat", {"x-request-id": "r-closed"})
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "Blue."
    assert len(ingress.handle.requests) == 1 and ingress.ledger.count() == 1
    decision = await ingress.decision_for({}, "r-closed")
    assert decision["profile"] == CLOSED
    assert any(s.startswith(f"open: {CLOSED} has no replica") for s in decision["steps"])
    startup = LOCAL.profile(CLOSED).replicas.startup_s
    assert decision["estimate"]["queue_wait_ms"] >= 1000.0 * startup


def test_may_open_reads_the_policy_bounds_not_the_ceiling():
    """The spend ceiling is the planner's (it may open a profile by closing another)."""
    from orchestrator.policy import load_policy_text

    profile = LOCAL.profile(CLOSED)
    free = load_policy_text(POLICY_TEXT, "policy.yaml", LOCAL)
    assert live.may_open(profile, free)
    zero = f"profiles: {{{CLOSED}: {{min_replicas: 0}}}}"
    # the other profile's replica takes the whole ceiling: opening is the planner's to weigh
    capped = POLICY_TEXT + f"autoscaling: {{max_cost_per_hour_usd: 0.05, {zero}}}\n"
    assert live.may_open(profile, load_policy_text(capped, "policy.yaml", LOCAL))
    never = POLICY_TEXT + f"autoscaling: {{profiles: {{{CLOSED}: {NEVER}}}}}\n"
    assert not live.may_open(profile, load_policy_text(never, "policy.yaml", LOCAL))


async def test_a_replica_that_never_starts_fails_the_request_within_its_deadline(
    ingress, engine_stream, monkeypatch
):
    """Serve holds a request for a closed profile while its replica starts; one that never
    starts is cut after twice the priced TTFT plus a margin (shortened here): the call is
    cancelled, the profile marked down (no longer routed to) and the client told (503)."""
    from orchestrator.request.errors import RequestError
    from orchestrator.serving import request_run

    monkeypatch.setattr(request_run, "OPEN_DEADLINE_FACTOR", 0.0)
    monkeypatch.setattr(request_run, "OPEN_DEADLINE_MARGIN_S", 0.2)
    _scaled_to_zero(ingress)
    held = engine_stream([], hang=True)
    ingress.handle.streams.append(held)
    body = {"model": CLOSED, "messages": MESSAGES}
    with pytest.raises(RequestError) as refused:
        # without the deadline it would wait for ever: cut the test short instead
        await asyncio.wait_for(serve_body(ingress, body, "chat", {"x-request-id": "r-n"}), 10)
    assert refused.value.status == 503 and refused.value.code == "engine_unavailable"
    assert held.cancelled
    assert not _live(ingress).live.healthy  # down until a health check passes


def test_phases_name_each_state_for_status_and_healthz(ingress):
    """`/v1/orchestrator/status` and `/healthz` show a profile at zero as closed (it opens at
    the first request), not as a failure; the ingress stays ready when every profile is
    closed (a fleet scaled to zero must still take the request that opens it)."""
    from orchestrator.serving.health_report import phases
    from orchestrator.serving.profile_status import can_serve

    assert phases(ingress) == {CLOSED: "open", OPEN: "open"}
    for name in (CLOSED, OPEN):
        _scaled_to_zero(ingress, name)
    assert phases(ingress) == {CLOSED: "closed", OPEN: "closed"}
    nothing_ready = dict.fromkeys((CLOSED, OPEN), False)
    assert can_serve(nothing_ready, phases(ingress), ingress.load.in_flight)
    # a server still starting (replicas starting, nothing held for them) is not ready yet
    ingress.starting.update({CLOSED: 1, OPEN: 1})
    assert phases(ingress) == {CLOSED: "opening", OPEN: "opening"}
    assert not can_serve(nothing_ready, phases(ingress), ingress.load.in_flight)
    # ... but a profile opening for a request it holds is serving that request
    ingress.load.begin("held", "others", CLOSED, 0.0)
    assert can_serve(nothing_ready, phases(ingress), ingress.load.in_flight)
    ingress.engine_down(OPEN, "engine process killed")
    assert phases(ingress)[OPEN] == "unhealthy"
    use_policy(ingress, POLICY_TEXT + f"autoscaling: {{profiles: {{{CLOSED}: {NEVER}}}}}\n")
    ingress.starting[CLOSED] = 0
    ingress.load.end("held")
    assert phases(ingress)[CLOSED] == "unhealthy"  # at zero and not allowed to open
    assert not can_serve(nothing_ready, phases(ingress), ingress.load.in_flight)
