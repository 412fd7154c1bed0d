"""Overload shedding (issue 15): refusals come at once with Retry-After, lowest priority first."""

from __future__ import annotations

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import load_policy_text
from orchestrator.replica_model import LiveState
from orchestrator.request.admission import (
    ProfileLoad,
    check_overload,
    held_by_queue,
    loads_of,
    priority_share,
)
from orchestrator.request.route_inputs import priced_views
from orchestrator.routing import with_live


def _loads(in_flight: int) -> list[ProfileLoad]:
    # two profiles, 8 slots each: capacity 16
    half = in_flight // 2
    return [
        ProfileLoad("a", 1, 8, 90.0, half),
        ProfileLoad("b", 1, 8, 90.0, in_flight - half),
    ]


def test_priority_share_orders_tenants():
    assert priority_share(0, [0]) == 1.0
    assert priority_share(0, [0, 5, 10]) == 1.0
    assert priority_share(5, [0, 5, 10]) == 1.5
    assert priority_share(10, [0, 5, 10]) == 2.0


@pytest.mark.parametrize(("in_flight", "refused"), [(16, False), (23, False), (24, True)])
def test_one_priority_queues_half_the_capacity(in_flight, refused):
    found = check_overload(_loads(in_flight), priority=0, priorities=[0])
    if refused:
        assert found is not None and found.status == 429 and found.retry_after_s >= 1
        assert found.code == "server_overloaded"
    else:
        assert found is None


def test_low_priority_is_shed_before_high_priority():
    loads = _loads(28)  # 16 running, 12 waiting
    assert check_overload(loads, priority=0, priorities=[0, 10]) is not None  # may queue 8
    assert check_overload(loads, priority=10, priorities=[0, 10]) is None  # may queue 16
    assert check_overload(_loads(32), priority=10, priorities=[0, 10]) is not None


def test_retry_after_grows_with_the_queue_and_nothing_running_is_left_to_the_router():
    def retry_after(in_flight: int) -> int:
        found = check_overload(_loads(in_flight), priority=0, priorities=[0])
        assert found is not None
        return found.retry_after_s

    assert retry_after(60) > retry_after(24)
    assert check_overload([ProfileLoad("a", 0, 8, 90.0, 100)], priority=0, priorities=[0]) is None


def test_requests_waiting_for_their_prediction_count_as_queued():
    """16 slots, 8 more may queue (one priority): 20 in flight alone is admitted; with 4 more
    still waiting for their prediction at the ingress it is not."""
    assert check_overload(_loads(20), priority=0, priorities=[0]) is None
    found = check_overload(_loads(20), priority=0, priorities=[0], waiting=4)
    assert found is not None and found.status == 429


def test_the_ingress_queue_bounds_its_waiting_and_seated_beyond_the_batch():
    assert held_by_queue(waiting=5, busy=10, slots=8) == 7  # 5 waiting, 2 seated beyond 8
    assert held_by_queue(waiting=5, busy=6, slots=8) == 5
    # no replica running: Serve's queue waits for the first one, the ingress holds only
    # what already waited in it
    assert held_by_queue(waiting=0, busy=30, slots=0) == 0
    assert held_by_queue(waiting=2, busy=30, slots=0) == 2


def test_admission_counts_only_what_no_queue_holds():
    """One replica of 48 slots busy and 400 waiting in the ingress queue: counted whole, the
    tenant is shed; with the queue's 400 left to the queue, it is admitted (and what the
    engines and Serve hold beyond the queue still counts)."""
    gpu = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    policy = load_policy_text(
        "apiVersion: orchestrator/v1\nkind: Policy\ndefault_tenant: {name: default}\n",
        "policy.yaml",
        gpu,
    )
    name = "llama8b-fp8-ngram"
    busy = LiveState(replicas_running=1, requests_in_flight=48, requests_queued=400)
    views = with_live(priced_views(gpu, policy).values(), {name: busy})

    def shed(held: dict[str, int]) -> bool:
        loads = loads_of(views, [name], held)
        return check_overload(loads, priority=0, priorities=[0]) is not None

    assert shed({})
    assert not shed({name: 400})
    assert shed({name: 370})  # 30 beyond the slots that no queue holds: over 24
