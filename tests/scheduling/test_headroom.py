"""Fair headroom: who may start beyond a profile's busy batch slots (pure)."""

from __future__ import annotations

import pytest

from orchestrator.scheduling.headroom import fair_share, may_borrow


def weight(tenant: str) -> float:
    return {"heavy": 1.0, "light": 1.0, "gold": 3.0}.get(tenant, 1.0)


def test_fair_share_splits_the_slots_by_weight_among_active_tenants():
    held = {"heavy": 10, "gone": 0}
    assert fair_share("light", 16, held, [], weight) == 8.0  # heavy and light; "gone" holds none
    assert fair_share("gold", 16, held, ["light"], weight) == pytest.approx(16 * 3 / 5)
    assert fair_share("heavy", 16, {}, [], weight) == 16.0  # alone: every slot


@pytest.mark.parametrize(
    ("tenant", "busy", "held", "headroom", "borrows"),
    [
        ("light", 16, {"heavy": 16}, 0.25, True),  # below its share, room left (16 + 4)
        ("light", 20, {"heavy": 16, "light": 4}, 0.25, False),  # headroom used up
        ("heavy", 16, {"heavy": 16}, 0.25, False),  # alone: its share is every slot
        ("heavy", 16, {"heavy": 12, "light": 4}, 0.25, False),  # over its share of 8
        ("light", 16, {"heavy": 16}, 0.0, False),  # off
        ("light", 16, {"heavy": 8, "light": 8}, 0.25, False),  # at its share
    ],
)
def test_only_a_tenant_below_its_share_borrows_and_only_within_the_headroom(
    tenant, busy, held, headroom, borrows
):
    got = may_borrow(
        tenant, slots=16, busy=busy, held=held, waiting=[], weight=weight, headroom=headroom
    )
    assert got is borrows


def test_a_short_request_starts_beyond_a_full_batch_while_engine_seats_are_free():
    from orchestrator.scheduling.headroom import may_start_short

    assert may_start_short(33.0, busy=8, seats=16, short_work_tokens=64)
    assert not may_start_short(65.0, busy=8, seats=16, short_work_tokens=64)  # not short
    assert not may_start_short(33.0, busy=16, seats=16, short_work_tokens=64)  # no seat left
    assert not may_start_short(0.0, busy=8, seats=16, short_work_tokens=0)  # lane off
