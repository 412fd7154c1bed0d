"""The order key and vLLM's priority derived from it."""

from __future__ import annotations

import random

from orchestrator.scheduling import engine_priority, order_key


def test_shorter_predicted_work_goes_first_at_the_same_arrival():
    short = order_key(arrival_s=0, priority=0, work=20, aging_s=30, seq=2)
    long = order_key(arrival_s=0, priority=0, work=2000, aging_s=30, seq=1)
    assert short < long


def test_typical_answers_spread_over_the_aging_bound():
    # a short answer arriving a third of the bound later still goes before a long one: the
    # work order holds over most of the bound, not only within a few seconds of arrival
    long = order_key(arrival_s=0, priority=0, work=1000, aging_s=30, seq=1)
    short = order_key(arrival_s=10, priority=0, work=50, aging_s=30, seq=2)
    assert short < long


def test_a_higher_priority_class_goes_first_whatever_its_work():
    high = order_key(arrival_s=50, priority=10, work=100_000, aging_s=30)
    low = order_key(arrival_s=0, priority=0, work=1, aging_s=30)
    assert high < low


def test_no_request_is_overtaken_by_one_arriving_past_the_aging_bound():
    rng = random.Random(0)
    for _ in range(5000):
        t = rng.uniform(0, 100)
        a = order_key(arrival_s=t, priority=0, work=rng.uniform(0, 1e6), aging_s=30)
        b_at = t + rng.uniform(0, 60)
        b = order_key(arrival_s=b_at, priority=0, work=rng.uniform(0, 1e6), aging_s=30)
        if b < a:
            assert b_at - t < 30


def test_aging_bound_holds_exactly():
    a = order_key(arrival_s=0.0, priority=0, work=1e9, aging_s=30)  # the longest work
    assert 29.9 < a.virtual_s <= 30.0
    b = order_key(arrival_s=30.001, priority=0, work=0, aging_s=30)  # the shortest, later
    assert a < b


def test_a_deadline_pulls_a_request_forward_never_back():
    plain = order_key(arrival_s=0, priority=0, work=5000, aging_s=30)
    urgent = order_key(arrival_s=0, priority=0, work=5000, aging_s=30, deadline_s=1.0)
    loose = order_key(arrival_s=0, priority=0, work=5000, aging_s=30, deadline_s=500.0)
    assert urgent.virtual_s == 1.0
    assert loose.virtual_s == plain.virtual_s


def test_fcfs_orders_by_arrival_only():
    first = order_key(arrival_s=0, priority=0, work=5000, aging_s=30, fcfs=True)
    second = order_key(arrival_s=1, priority=0, work=1, aging_s=30, fcfs=True)
    assert first < second
    assert engine_priority(first, fcfs=True) == engine_priority(second, fcfs=True) == 0


def test_engine_priority_follows_the_key():
    rng = random.Random(1)
    keys = [
        order_key(
            arrival_s=1.7e9 + rng.uniform(0, 1000),
            priority=rng.choice([0, 5, 1000]),
            work=rng.uniform(0, 1e5),
            aging_s=30,
        )
        for _ in range(500)
    ]
    by_key = sorted(keys)
    prios = [engine_priority(k) for k in by_key]
    assert prios == sorted(prios)
    assert all(-(2**63) <= p < 2**63 for p in prios)  # vLLM's field is an int64


def test_settings_give_the_engine_the_queue_order():
    from orchestrator.scheduling import SchedulingSettings, TenantShare

    s = SchedulingSettings(tenants={"gold": TenantShare(priority=5)})
    short = s.engine_priority("bulk", "standard", 10, now=1.7e9)
    long = s.engine_priority("bulk", "standard", 10_000, now=1.7e9)
    gold = s.engine_priority("gold", "standard", 100_000, now=1.7e9 + 60)
    assert gold < short < long
    assert SchedulingSettings(order="fcfs").engine_priority("bulk", "standard", 10, 1.7e9) == 0


def test_engine_fields_carry_the_priority_and_the_prediction():
    from orchestrator.scheduling import SchedulingSettings
    from orchestrator.scheduling.replicas import request_work

    s = SchedulingSettings()
    fields = s.engine_fields("t", "standard", 160, 40.0, now=1.7e9, client_xargs={"mine": 1})
    assert fields["priority"] == s.engine_priority("t", "standard", 40.0 + 10.0, 1.7e9)
    assert fields["vllm_xargs"]["mine"] == 1
    assert request_work(fields) == (160, 40)


def test_the_ingress_order_weighs_a_request_by_how_long_it_holds_a_batch_slot():
    """A long prompt with a short answer frees its slot long before a short prompt with a long
    answer (prefill is ~500x a stream's decode rate): it leaves the ingress queue first. The
    engine's waiting queue waits for a prefill, so there the prompt weighs as prefill work."""
    from orchestrator.scheduling import SchedulingSettings, Waiting, WaitQueue
    from orchestrator.scheduling.key import order_work

    long_prompt = Waiting("a", "t", prompt_tokens=15_000, predicted_tokens=20)
    long_answer = Waiting("b", "t", prompt_tokens=100, predicted_tokens=500)
    assert long_prompt.order_work < long_answer.order_work
    assert long_prompt.work > long_answer.work  # the prefill-weighted work (shares, replicas)
    s = SchedulingSettings()
    first = s.engine_fields("t", "standard", 15_000, 20, now=1.7e9)["priority"]
    second = s.engine_fields("t", "standard", 100, 500, now=1.7e9)["priority"]
    assert first > second  # the engine: the shorter prefill first
    queue = WaitQueue(s, lambda: 1.7e9)
    queue.push(long_answer)
    queue.push(long_prompt)
    assert queue.pop().item.request_id == "a"
    assert order_work(512, 0) == 1.0
