"""Overload shedding (issue 15): refusals come at once with Retry-After, lowest priority first."""

from __future__ import annotations

import pytest

from orchestrator.request.admission import ProfileLoad, check_overload, priority_share


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
