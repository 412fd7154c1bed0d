"""The ingress queue on the event loop: slots per profile, release in key order, refusals,
cancellation and a reload that shrinks a bound (nothing lost)."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.scheduling import SchedulingSettings, TenantShare, Waiting
from orchestrator.serving.ingress_queue import IngressQueue, QueueFull


def settings(max_queued: int = 100) -> SchedulingSettings:
    return SchedulingSettings(default=TenantShare(max_queued=max_queued))


def item(rid: str, tokens: float = 100.0, tenant: str = "t") -> Waiting:
    return Waiting(rid, tenant, predicted_tokens=tokens)


def test_free_slots_go_at_once_then_waiters_leave_in_key_order():
    async def scenario():
        q = IngressQueue(settings(), capacity=lambda profile: 2)
        a = await q.turn("p", item("a"))
        b = await q.turn("p", item("b"))
        assert (a.position, a.waited_s, b.position) == (0, 0.0, 0)
        order: list[str] = []

        async def wait(rid: str, tokens: float):
            ticket = await q.turn("p", item(rid, tokens))
            order.append(rid)
            return ticket

        tasks = [asyncio.create_task(wait(r, t)) for r, t in (("long", 5000), ("short", 5))]
        await asyncio.sleep(0)
        assert q.snapshot()["p"]["waiting"] == 2 and order == []
        a.done(0, 120)
        await asyncio.sleep(0)
        assert order == ["short"]
        b.done()
        b.done()  # a second done is a no-op
        await asyncio.sleep(0)
        assert order == ["short", "long"]
        for t in tasks:
            (await t).done()
        assert q.snapshot()["p"]["busy"] == 0

    asyncio.run(scenario())


def test_a_profile_without_running_replicas_is_not_held():
    async def scenario():
        q = IngressQueue(settings(), capacity=lambda profile: 0)
        tickets = [await q.turn("p", item(str(i))) for i in range(50)]
        assert len(tickets) == 50

    asyncio.run(scenario())


def test_a_full_tenant_queue_is_refused_with_retry_after():
    async def scenario():
        q = IngressQueue(settings(max_queued=1), capacity=lambda profile: 1)
        await q.turn("p", item("a"))
        waiter = asyncio.create_task(q.turn("p", item("b")))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as info:
            await q.turn("p", item("c"))
        assert info.value.retry_after_s >= 1
        waiter.cancel()

    asyncio.run(scenario())


def test_a_client_that_leaves_while_queued_is_gone_and_charged_nothing():
    async def scenario():
        q = IngressQueue(settings(), capacity=lambda profile: 1)
        first = await q.turn("p", item("a", tenant="x"))
        gone = asyncio.create_task(q.turn("p", item("b", tenant="y")))
        stays = asyncio.create_task(q.turn("p", item("c", tenant="z")))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        assert q.snapshot()["p"]["waiting"] == 1
        first.done()
        ticket = await stays
        assert ticket.tenant == "z" and ticket.position == 1
        assert gone.cancelled()

    asyncio.run(scenario())


def test_a_reload_that_shrinks_the_bound_refuses_the_excess_and_serves_the_rest():
    async def scenario():
        q = IngressQueue(settings(max_queued=10), capacity=lambda profile: 1)
        held = await q.turn("p", item("a"))
        waiters = [asyncio.create_task(q.turn("p", item(f"w{i}", 10 * (i + 1)))) for i in range(5)]
        await asyncio.sleep(0)
        assert q.reconfigure(settings(max_queued=2)) == 3
        for refused in waiters[2:]:  # the longest predicted: last in key order
            with pytest.raises(QueueFull, match="shrunk"):
                await refused
        held.done()
        first = await waiters[0]
        assert not waiters[1].done()  # one slot: the next waits its turn
        first.done()
        (await waiters[1]).done()
        assert q.snapshot()["p"] == {"busy": 0, "waiting": 0, "tenants": {}}

    asyncio.run(scenario())


def test_a_tenant_below_its_share_starts_beyond_the_busy_slots():
    """Fair headroom: the heavy tenant holds every slot and has more waiting; the light
    tenant's request starts at once (borrowed), the heavy one's extra request waits. Without
    headroom the light one waits for a slot to free."""

    async def scenario(headroom: float) -> tuple[bool, bool]:
        s = SchedulingSettings(default=TenantShare(max_queued=100), fair_headroom=headroom)
        q = IngressQueue(s, capacity=lambda profile: 4)
        held = [await q.turn("p", item(f"h{i}", tenant="heavy")) for i in range(4)]
        heavy = asyncio.create_task(q.turn("p", item("h-more", tenant="heavy")))
        light = asyncio.create_task(q.turn("p", item("l", tenant="light")))
        await asyncio.sleep(0)
        started = (light.done(), heavy.done())
        if light.done():
            assert light.result().borrowed and q.snapshot()["p"]["busy"] == 5
            light.result().done()
        for ticket in held:
            ticket.done()
        for task in (heavy, light):
            (await task).done()
        assert q.snapshot()["p"]["busy"] == 0
        return started

    assert asyncio.run(scenario(0.25)) == (True, False)
    assert asyncio.run(scenario(0.0)) == (False, False)


def test_a_short_request_starts_in_a_free_engine_seat_and_a_long_one_waits():
    """Short lane: 2 batch slots busy with long answers, 4 engine seats. A request predicted
    short (work <= `short_work_tokens`) starts at once; a long one waits; with the seats all
    taken a short one waits too, and takes the next free seat ahead of the long one. Lane off:
    the short one waits."""

    async def scenario(short_work: int) -> tuple[bool, bool]:
        s = SchedulingSettings(default=TenantShare(max_queued=100), short_work_tokens=short_work)
        q = IngressQueue(s, capacity=lambda profile: 2, seats=lambda profile: 4)
        held = [await q.turn("p", item(f"long{i}", tokens=2000)) for i in range(2)]
        long = asyncio.create_task(q.turn("p", item("long-more", tokens=2000)))
        short = asyncio.create_task(q.turn("p", item("short", tokens=20)))
        await asyncio.sleep(0)
        started = (short.done(), long.done())
        if short.done():
            assert short.result().borrowed and q.snapshot()["p"]["busy"] == 3
            more = [await q.turn("p", item("short2", tokens=20))]  # the 4th seat
            crowded = asyncio.create_task(q.turn("p", item("short3", tokens=20)))
            await asyncio.sleep(0)
            assert not crowded.done()  # every seat taken: it waits in key order
            more.append(short.result())
            for ticket in more:
                ticket.done()
            await asyncio.sleep(0)
            assert crowded.done() and not long.done()  # a seat freed: the short head takes it
        else:
            crowded = None
        for ticket in held:
            ticket.done()
        for task in (long, short, crowded):
            if task is not None:
                (await task).done()
        assert q.snapshot()["p"]["busy"] == 0
        return started

    assert asyncio.run(scenario(64)) == (True, False)
    assert asyncio.run(scenario(0)) == (False, False)


def test_a_request_past_its_wait_bound_leaves_with_429_and_the_queue_moves_on():
    """`scheduling.max_wait_s`: a waiter past its bound gets 429 `queue_timeout` with
    Retry-After, charged nothing; one released within its bound runs."""

    async def scenario():
        bounded = SchedulingSettings(default=TenantShare(max_wait_s=0.05))
        q = IngressQueue(bounded, capacity=lambda profile: 1)
        held = await q.turn("p", item("a"))
        late = asyncio.create_task(q.turn("p", item("late")))
        with pytest.raises(QueueFull, match="waited past its queue bound") as info:
            await late
        assert info.value.reason == "queue_timeout" and info.value.retry_after_s >= 1
        assert q.snapshot()["p"]["waiting"] == 0 and q.snapshot()["p"]["busy"] == 1
        soon = asyncio.create_task(q.turn("p", item("soon")))
        await asyncio.sleep(0)
        held.done()
        ticket = await soon
        assert ticket.queued and ticket.waited_s < 0.05
        ticket.done()
        assert q.snapshot()["p"]["busy"] == 0

    asyncio.run(scenario())


def test_routing_is_priced_every_waiting_request_of_its_class_not_its_fair_place():
    """`places` (what the executor plans with, `PlanState.ahead`): a light tenant's request is
    priced the heavy tenant's whole backlog, not its place at the front of the fair order."""

    async def scenario():
        q = IngressQueue(settings(), capacity=lambda profile: 1)
        first = await q.turn("p", item("first", tenant="heavy"))
        waiters = [
            asyncio.create_task(q.turn("p", item(f"h{i}", 500.0, tenant="heavy")))
            for i in range(20)
        ]
        await asyncio.sleep(0)
        assert q.places("light") == {"p": 20}
        assert q.places("light", background=True) == {"p": 20}
        first.done()
        for t in waiters:
            (await t).done()
        assert q.places("light") == {}

    asyncio.run(scenario())
