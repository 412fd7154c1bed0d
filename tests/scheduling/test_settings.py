"""The policy's `scheduling:` block resolved into the settings the queue reads."""

from __future__ import annotations

import pytest
from scheduling_helpers import policy_of

from orchestrator.config_files import ConfigError
from orchestrator.policy.explain import explain_policy, render_text
from orchestrator.scheduling import QueueRefusal, SchedulingSettings, Waiting, WaitQueue

TENANTS = """
unknown_keys: default_tenant
tenants:
  - {name: gold, api_keys: [{env: KA}], priority: 10, classes: {standard: {latency: {ttft_p95_ms: 800}}}}
  - {name: bulk, api_keys: [{env: KB}]}
"""


def test_defaults_apply_to_every_tenant(local_catalog):
    s = SchedulingSettings.of(policy_of(TENANTS, local_catalog))
    assert (s.order, s.aging_s) == ("predicted", 30.0)
    assert s.share("bulk").max_queued == 1000 and s.share("bulk").weight == 1.0
    assert s.share("gold").priority == 10
    assert s.deadline_ms("gold", "standard") is None  # deadline order is opt-in


def test_block_and_per_tenant_fields_take_effect(local_catalog):
    body = (
        TENANTS
        + """
scheduling:
  order: fcfs
  aging_s: 5
  max_queued: 8
  weight: 2
  tenants:
    gold: {weight: 4, max_queued: 2, deadline: true}
"""
    )
    s = SchedulingSettings.of(policy_of(body, local_catalog))
    assert (s.order, s.aging_s) == ("fcfs", 5.0)
    assert (s.share("gold").weight, s.share("gold").max_queued) == (4.0, 2)
    assert (s.share("bulk").weight, s.share("bulk").max_queued) == (2.0, 8)
    assert s.deadline_ms("gold", "standard") == 800.0
    assert s.deadline_ms("bulk", "standard") is None


def test_scheduling_names_only_known_tenants(local_catalog):
    body = TENANTS + "scheduling:\n  tenants:\n    golden: {weight: 2}\n"
    with pytest.raises(ConfigError, match="unknown tenant 'golden'"):
        policy_of(body, local_catalog)


@pytest.mark.parametrize(
    "field",
    [
        "aging_s: 0",
        "max_queued: -1",
        "weight: 0",
        "order: sjf",
        "fair_headroom: -1",
        "short_work_tokens: -1",
    ],
)
def test_invalid_values_are_refused_naming_the_field(local_catalog, field):
    with pytest.raises(ConfigError, match=field.split(":")[0]):
        policy_of(TENANTS + f"scheduling:\n  {field}\n", local_catalog)


def test_fair_headroom_from_the_policy_lends_slots_beyond_a_full_batch(local_catalog):
    """`bulk` holds none of 8 busy slots (all `gold`'s): under the default headroom it may
    start beyond them; with `fair_headroom: 0` it waits."""
    on = SchedulingSettings.of(policy_of(TENANTS, local_catalog))
    off = SchedulingSettings.of(
        policy_of(TENANTS + "scheduling: {fair_headroom: 0}\n", local_catalog)
    )
    args = ("bulk", 8, 8, {"gold": 8}, [])
    assert on.fair_headroom == 0.25 and on.may_borrow(*args)
    assert not off.may_borrow(*args)
    text = render_text(explain_policy(policy_of(TENANTS, local_catalog)))
    assert "below their fair share may start up to 25 % beyond" in text


def test_short_work_tokens_from_the_policy_opens_the_short_lane(local_catalog):
    """Default 64: a request predicted to need 33 tokens of work starts beyond a full batch of
    8 while the engine has seats (16); 65 does not; `short_work_tokens: 0` or `order: fcfs`
    close the lane."""
    on = SchedulingSettings.of(policy_of(TENANTS, local_catalog))
    off = SchedulingSettings.of(
        policy_of(TENANTS + "scheduling: {short_work_tokens: 0}\n", local_catalog)
    )
    fcfs = SchedulingSettings.of(policy_of(TENANTS + "scheduling: {order: fcfs}\n", local_catalog))
    assert on.short_work_tokens == 64 and on.may_start_short(33.0, 8, 16)
    assert not on.may_start_short(65.0, 8, 16)
    assert not off.may_start_short(33.0, 8, 16) and not fcfs.may_start_short(33.0, 8, 16)
    text = render_text(explain_policy(policy_of(TENANTS, local_catalog)))
    assert "predicted to need at most 64 tokens of work start beyond a full batch" in text


def test_deadline_only_for_classes_with_a_ttft_target(local_catalog):
    body = TENANTS + "scheduling:\n  tenants:\n    gold: {deadline: true}\n"
    s = SchedulingSettings.of(policy_of(body, local_catalog))
    assert s.deadline_ms("gold", "standard") == 800.0
    assert s.deadline_ms("gold", "reasoning") is None


def _released(policy_body: str, catalog, pushes, clock) -> list[str]:
    """Push (id, tenant, tokens, seconds to advance after) into a queue under the policy."""
    q = WaitQueue(SchedulingSettings.of(policy_of(TENANTS + policy_body, catalog)), clock)
    out = []
    for rid, tenant, tokens, later in pushes:
        got = q.push(Waiting(rid, tenant, predicted_tokens=tokens))
        if isinstance(got, QueueRefusal):
            out.append(f"429:{rid}")
        clock.advance(later)
    out += [f"timeout:{rid}" for rid in q.overdue() if q.time_out(rid) is not None]
    while (r := q.pop()) is not None:
        out.append(r.item.request_id)
    return out


# each field of the block, and the same pushes with and without it
FIELD_CASES = {
    "order": (
        "scheduling: {order: fcfs}\n",
        [("long", "bulk", 9000, 0.1), ("short", "bulk", 5, 0)],
    ),
    "aging_s": (
        "scheduling: {aging_s: 1}\n",
        [("long", "bulk", 9000, 2.0), ("short", "bulk", 5, 0)],
    ),
    "max_queued": ("scheduling: {max_queued: 1}\n", [("a", "bulk", 5, 0), ("b", "bulk", 5, 0)]),
    "weight": (
        "scheduling: {weight: 1, tenants: {bulk: {weight: 10}}}\n",
        [(f"{t}{i}", t, 100, 0) for i in range(4) for t in ("bulk", "default")],
    ),
    "tenants.max_queued": (
        "scheduling: {tenants: {bulk: {max_queued: 1}}}\n",
        [("a", "bulk", 5, 0), ("b", "bulk", 5, 0)],
    ),
    "max_wait_s": ("scheduling: {max_wait_s: 1}\n", [("a", "bulk", 5, 2.0), ("b", "bulk", 5, 0)]),
    "tenants.max_wait_s": (
        "scheduling: {tenants: {bulk: {max_wait_s: 1}}}\n",
        [("a", "bulk", 5, 2.0), ("b", "bulk", 5, 0)],
    ),
    "tenants.deadline": (
        "scheduling: {tenants: {gold: {deadline: true}}}\n",
        [("gold-long", "gold", 90_000, 0), ("gold-short", "gold", 50, 0)],
    ),
}


@pytest.mark.parametrize("case", list(FIELD_CASES))
def test_policy_field_changes_the_queue(local_catalog, clock, case):
    body, pushes = FIELD_CASES[case]
    base = _released("", local_catalog, pushes, clock)
    changed = _released(body, local_catalog, pushes, clock)
    assert changed != base, f"scheduling.{case} did not change the release order"


def test_policy_explain_shows_the_queue(local_catalog):
    body = (
        TENANTS + "scheduling:\n  aging_s: 7\n  tenants:\n    gold: {weight: 3, deadline: true}\n"
    )
    exp = explain_policy(policy_of(body, local_catalog))
    text = render_text(exp)
    assert "aged (none overtaken by a request 7 s younger)" in text
    gold = next(t for t in exp.tenants if t.name == "gold")
    assert gold.queue["priority"] == 10 and gold.queue["max_queued"] == 1000
    assert gold.queue["weight"] == 3.0 and gold.queue["deadline"] is True
    assert "fair-share weight 3, up to 1000 waiting (then 429), deadline order" in text
    assert "longest wait (then 429 queue_timeout): standard " in text


def test_background_work_waits_after_every_tenants_requests(local_catalog, clock):
    """A batch line (`background`) ranks below the lowest priority class, in the ingress
    queue and in vLLM's priority, whatever its arrival or predicted work."""
    s = SchedulingSettings.of(policy_of(TENANTS, local_catalog))
    queue = WaitQueue(s, clock)
    queue.push(Waiting("line", "gold", 10, 5.0, "standard", background=True))
    clock.advance(20.0)
    queue.push(Waiting("bulk-long", "bulk", 4000, 2000.0, "standard"))
    assert [queue.pop().item.request_id for _ in range(2)] == ["bulk-long", "line"]
    line = s.engine_priority("gold", "standard", 1.0, 0.0, background=True)
    late = s.engine_priority("bulk", "standard", 100_000.0, 1e9)
    assert line > late  # vLLM schedules lower values first


def test_the_wait_bound_is_the_policys_or_twenty_ttft_targets():
    from orchestrator.policy.schema_cluster import MIN_WAIT_S, WAIT_TARGETS, wait_bound_s

    assert wait_bound_s(5.0, 800.0) == 5.0  # explicit wins
    assert wait_bound_s(0.0, 800.0) is None  # 0: no bound
    assert wait_bound_s(None, None) is None  # no TTFT target, nothing set: no bound
    assert wait_bound_s(None, 3000.0) == WAIT_TARGETS * 3.0
    assert wait_bound_s(None, 100.0) == MIN_WAIT_S
