"""The wait queue: order, fairness, bounds, cancellation and hot reload (virtual clock)."""

from __future__ import annotations

from scheduling_helpers import drain, item, settings

from orchestrator.scheduling import (
    Enqueued,
    QueueRefusal,
    SchedulingSettings,
    TenantShare,
    WaitQueue,
)


def test_releases_shortest_predicted_first(clock):
    q = WaitQueue(settings(), clock)
    for rid, tokens in (("long", 4000), ("mid", 300), ("short", 10)):
        q.push(item(rid, tokens=tokens))
    assert drain(q) == ["short", "mid", "long"]


def test_fcfs_order_releases_in_arrival_order(clock):
    q = WaitQueue(SchedulingSettings(order="fcfs"), clock)
    for rid, tokens in (("long", 4000), ("mid", 300), ("short", 10)):
        q.push(item(rid, tokens=tokens))
        clock.advance(0.01)
    assert drain(q) == ["long", "mid", "short"]


def test_a_waiting_request_is_not_overtaken_past_the_aging_bound(clock):
    q = WaitQueue(SchedulingSettings(aging_s=5.0), clock)
    q.push(item("long", tokens=100_000))
    clock.advance(1.0)
    q.push(item("short-soon", tokens=1))  # arrived within the bound: may go first
    clock.advance(5.0)
    q.push(item("short-late", tokens=1))  # arrived past the bound: may not
    assert drain(q) == ["short-soon", "long", "short-late"]


def test_higher_priority_class_first_then_deadline(clock):
    q = WaitQueue(
        settings(
            gold=TenantShare(priority=10, max_queued=10),
            slo=TenantShare(max_queued=10, deadline_ms={"standard": 500.0}),
            bulk=TenantShare(max_queued=10),
        ),
        clock,
    )
    q.push(item("bulk-short", "bulk", tokens=5))
    q.push(item("slo-long", "slo", tokens=20_000))
    q.push(item("gold-long", "gold", tokens=50_000))
    assert drain(q)[0] == "gold-long"
    # deadline 0.5 s beats a virtual start of several seconds for long work
    q.push(item("slo-long2", "slo", tokens=20_000))
    assert q.pop().item.request_id == "slo-long2"


def test_tenants_of_one_class_share_by_tokens_served(clock):
    """A tenant sending 10x the requests gets about the same tokens while both wait."""
    q = WaitQueue(
        settings(heavy=TenantShare(max_queued=1000), light=TenantShare(max_queued=1000)), clock
    )
    for i in range(100):
        q.push(item(f"h{i}", "heavy", tokens=100))
        if i % 10 == 0:
            q.push(item(f"l{i}", "light", tokens=100))
    first20 = [q.pop().item.tenant for _ in range(20)]
    assert first20.count("light") == 10  # every light request goes within the first 20


def test_fair_share_follows_the_weights(clock):
    q = WaitQueue(
        settings(
            a=TenantShare(weight=3.0, max_queued=1000), b=TenantShare(weight=1.0, max_queued=1000)
        ),
        clock,
    )
    for i in range(200):
        q.push(item(f"a{i}", "a", tokens=100))
        q.push(item(f"b{i}", "b", tokens=100))
    served = [q.pop().item.tenant for _ in range(100)]
    assert 70 <= served.count("a") <= 80


def test_actual_tokens_replace_the_prediction_in_the_counter(clock):
    q = WaitQueue(settings(a=TenantShare(max_queued=9), b=TenantShare(max_queued=9)), clock)
    q.push(item("a1", "a", tokens=10))
    q.push(item("b1", "b", tokens=1000))
    a1, b1 = q.pop(), q.pop()
    q.settle("a", a1.charged, prompt_tokens=0, output_tokens=5000)  # it ran long
    q.settle("b", b1.charged, prompt_tokens=0, output_tokens=1000)
    q.push(item("b2", "b", tokens=10))
    q.push(item("a2", "a", tokens=10))
    assert q.pop().item.request_id == "b2"  # a has been served more (by the prediction: less)


def test_a_tenant_over_its_bound_gets_429_with_retry_after(clock):
    q = WaitQueue(settings(t=TenantShare(max_queued=2)), clock)
    assert isinstance(q.push(item("1", "t")), Enqueued)
    assert isinstance(q.push(item("2", "t")), Enqueued)
    refused = q.push(item("3", "t"))
    assert isinstance(refused, QueueRefusal) and refused.retry_after_s >= 1
    assert isinstance(q.push(item("x", "other")), Enqueued)  # other tenants are not affected
    assert q.cancel("x") is not None
    assert q.pop().item.request_id == "1"
    assert isinstance(q.push(item("4", "t")), Enqueued)  # a release makes room
    assert q.queued("t") == 2


def test_retry_after_follows_the_typical_wait(clock):
    q = WaitQueue(settings(t=TenantShare(max_queued=1)), clock)
    for i in range(20):
        q.push(item(str(i), "t"))
        clock.advance(8.0)
        q.pop()
    q.push(item("held", "t"))
    assert q.push(item("over", "t")).retry_after_s == 8


def test_a_cancelled_request_leaves_at_once_and_is_charged_nothing(clock):
    q = WaitQueue(settings(a=TenantShare(max_queued=9), b=TenantShare(max_queued=9)), clock)
    q.push(item("a1", "a", tokens=1))
    q.push(item("b1", "b", tokens=50))
    assert q.cancel("a1") is not None
    assert "a1" not in q and len(q) == 1
    assert q.counter.served("a") == 0.0
    assert drain(q) == ["b1"]
    assert q.cancel("a1") is None  # gone: a second cancel is a no-op


def test_drain_empties_the_queue_in_key_order_and_charges_nothing(clock):
    """A lost profile's waiters all leave at once (each planned again elsewhere)."""
    q = WaitQueue(settings(a=TenantShare(max_queued=9), b=TenantShare(max_queued=9)), clock)
    q.push(item("a-long", "a", tokens=500))
    q.push(item("b1", "b", tokens=50))
    q.push(item("a-short", "a", tokens=5))
    assert [w.request_id for w in q.drain()] == ["a-short", "b1", "a-long"]
    assert len(q) == 0 and q.pop() is None and q.drain() == []
    assert q.counter.served("a") == q.counter.served("b") == 0.0


def test_the_position_counts_who_goes_first(clock):
    q = WaitQueue(settings(), clock)
    q.push(item("short", tokens=1))
    q.push(item("long", tokens=10_000))
    assert q.push(item("mid", tokens=100)).position == 1


def test_a_hot_reload_that_shrinks_a_bound_refuses_the_excess_and_loses_none(clock):
    q = WaitQueue(settings(t=TenantShare(max_queued=10), u=TenantShare(max_queued=10)), clock)
    pushed = {f"t{i}" for i in range(8)} | {"u0", "u1"}
    for i in range(8):
        q.push(item(f"t{i}", "t", tokens=10 * (i + 1)))  # t7 longest = latest in key order
    q.push(item("u0", "u"))
    q.push(item("u1", "u"))
    q.cancel("t0")
    refused = q.reconfigure(settings(t=TenantShare(max_queued=3), u=TenantShare(max_queued=10)))
    assert sorted(r.request_id for r in refused) == ["t4", "t5", "t6", "t7"]
    assert all(r.retry_after_s >= 1 and r.reason == "queue_shrunk" for r in refused)
    released = drain(q)
    assert sorted(released) == ["t1", "t2", "t3", "u0", "u1"]
    assert set(released) | {r.request_id for r in refused} | {"t0"} == pushed


def test_by_tenant_reports_length_class_and_oldest_wait(clock):
    q = WaitQueue(settings(g=TenantShare(priority=7, max_queued=9)), clock)
    q.push(item("1", "g"))
    clock.advance(2.0)
    q.push(item("2", "g"))
    clock.advance(1.0)
    assert q.by_tenant() == {"g": {"queued": 2, "priority": 7, "oldest_wait_s": 3.0}}


def test_requests_that_never_waited_count_in_the_shares(clock):
    q = WaitQueue(settings(a=TenantShare(max_queued=9), b=TenantShare(max_queued=9)), clock)
    q.admit_now("a", 5000.0)  # a was served straight through
    q.push(item("b1", "b", tokens=10))
    q.push(item("a1", "a", tokens=10))
    assert q.pop().item.request_id == "b1"


def test_older_than_lists_the_requests_past_a_wait(clock):
    q = WaitQueue(settings(), clock)
    q.push(item("old"))
    clock.advance(10.0)
    q.push(item("new"))
    assert q.older_than(5.0) == ["old"]


def test_peek_shows_what_pop_releases(clock):
    q = WaitQueue(settings(), clock)
    assert q.peek() is None
    q.push(item("long", tokens=5000))
    q.push(item("short", tokens=5))
    q.cancel("short")
    assert q.peek().request_id == "long"
    assert q.pop().item.request_id == "long"


def _place_when_pushed(q: WaitQueue, new) -> int:
    """Where `new` actually leaves once pushed: the number released before it."""
    q.push(new)
    return drain(q).index(new.request_id)


def _heavy_and_light(clock):
    return WaitQueue(
        settings(
            heavy=TenantShare(max_queued=1000),
            light=TenantShare(max_queued=1000),
            gold=TenantShare(priority=10, max_queued=1000),
        ),
        clock,
    )


def test_ahead_of_is_the_tenants_place_in_the_fair_order_not_the_queue_length(clock):
    q = _heavy_and_light(clock)
    q.admit_now("heavy", 5000.0)  # heavy has been served a lot already
    for i in range(30):
        q.push(item(f"h{i}", "heavy", tokens=100))
    ahead = q.ahead_of("light", "standard", 100.0)
    assert ahead <= 1  # a light tenant goes next (or after one tie), not after 30
    assert ahead == _place_when_pushed(q, item("l", "light", tokens=100))


def test_ahead_of_counts_a_heavy_tenants_own_backlog_and_better_classes(clock):
    q = _heavy_and_light(clock)
    for i in range(10):
        q.push(item(f"h{i}", "heavy", tokens=100))
    for i in range(3):
        q.push(item(f"g{i}", "gold", tokens=5000))
    clock.advance(1.0)
    ahead = q.ahead_of("heavy", "standard", 100.0)
    assert ahead == 13
    assert ahead == _place_when_pushed(q, item("h-new", "heavy", tokens=100))


def test_ahead_of_follows_the_counters_of_two_backlogged_tenants(clock):
    q = _heavy_and_light(clock)
    for i in range(20):
        q.push(item(f"h{i}", "heavy", tokens=100))
    for i in range(4):
        q.push(item(f"l{i}", "light", tokens=100))
    clock.advance(1.0)
    ahead = q.ahead_of("light", "standard", 100.0)
    assert 4 <= ahead < 12  # its own 4, then about as many of heavy's: not heavy's 20
    assert ahead == _place_when_pushed(q, item("l-new", "light", tokens=100))


def test_ahead_of_is_zero_when_nothing_waits(clock):
    assert WaitQueue(settings(), clock).ahead_of("anyone", "standard", 10.0) == 0


def test_ahead_of_equals_the_real_release_place_over_random_queues():
    """Random tenants (weights, classes), backlogs, earlier service and cancellations: the
    place `ahead_of` estimates is where the request actually leaves (ties of equal virtual
    counters included: the whole-number charges make them exact)."""
    import random

    from tests.scheduling.scheduling_helpers import Clock

    rng = random.Random(7)
    for case in range(150):
        clock = Clock()
        shares = {
            t: TenantShare(
                max_queued=1000, weight=rng.choice([1.0, 2.0, 4.0]), priority=rng.choice([0, 0, 5])
            )  # fmt: skip
            for t in ("a", "b", "c")
        }
        q = WaitQueue(settings(**shares), clock)
        for t in shares:
            if rng.random() < 0.5:
                q.admit_now(t, float(rng.randint(0, 3000)))
        rids = []
        for i in range(rng.randint(0, 40)):
            t = rng.choice("abc")
            rids.append(f"{t}{i}")
            q.push(item(rids[-1], t, tokens=rng.choice([8, 64, 256, 2000])))
            clock.advance(rng.random())
        for rid in rng.sample(rids, k=len(rids) // 4):
            q.cancel(rid)
        tenant, tokens = rng.choice("abc"), rng.choice([8, 64, 256, 2000])
        ahead = q.ahead_of(tenant, "standard", float(tokens))
        assert ahead == _place_when_pushed(q, item("new", tenant, tokens=tokens)), case


def test_routing_prices_the_backlog_of_its_class_not_its_fair_place(clock):
    """`ahead_of` is where a new request would leave were nothing else to arrive (a light
    tenant: next); routing prices `waiting_through`, the whole backlog of its priority class
    and the better ones, never a worse class: a fair share in another tenant's backlog is
    capacity taken from that tenant (Azure x10 cold, session 17)."""
    q = _heavy_and_light(clock)
    q.admit_now("heavy", 5000.0)
    for i in range(30):
        q.push(item(f"h{i}", "heavy", tokens=100))
    for i in range(3):
        q.push(item(f"g{i}", "gold", tokens=5000))
    for i in range(4):
        q.push(item(f"b{i}", "light", tokens=100, background=True))
    assert q.ahead_of("light", "standard", 10.0) <= 4  # gold's 3 (and a tie)
    assert q.waiting_through("light") == 33  # heavy's 30 and gold's 3; not the lines
    assert q.waiting_through("gold") == 3
    assert q.waiting_through("light", background=True) == 37
    assert WaitQueue(settings(), clock).waiting_through("anyone") == 0
