"""The controller's Serve edge without a cluster: Ray's own AutoscalingContext / AutoscalingConfig
objects drive our policy classes, the hub and the observation mapping."""

from __future__ import annotations

import pytest
from ray.serve._private.common import DeploymentID, ReplicaID
from ray.serve.autoscaling_policy import _apply_autoscaling_config
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from orchestrator.catalog import load_catalog
from orchestrator.control import hub as hub_module
from orchestrator.control.serve_policy import (
    IngressAutoscaler,
    ProfileAutoscaler,
    drain_timeout_s,
    ingress_autoscaling_config,
    profile_serve_options,
)
from orchestrator.control.status import status_document
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import PolicyWatcher
from orchestrator.policy.loader import content_version, load_policy
from orchestrator.signals.meters import DemandMeter, LatencyMeter, demand_key, percentile
from orchestrator.signals.serve_contexts import demand_from_ingress, profile_observation
from tests.policy.policy_helpers import policy_text

LOCAL = PROJECT_ROOT / "deployments" / "local.yaml"


def context(
    name, *, ready, target, metrics=None, queued=0.0, now=0.0, config=None, state=None, total=0.0
):
    dep = DeploymentID(name=name, app_name="orchestrator")
    replicas = [ReplicaID(unique_id=f"{name}-{i}", deployment_id=dep) for i in range(ready)]
    per_replica = {
        key: {replicas[i]: v for i, v in enumerate(values)}
        for key, values in (metrics or {}).items()
    }
    return AutoscalingContext(
        deployment_id=dep,
        deployment_name=name,
        app_name="orchestrator",
        current_num_replicas=ready,
        target_num_replicas=target,
        running_replicas=replicas,
        total_num_requests=total,
        total_queued_requests=queued,
        aggregated_metrics=per_replica,
        raw_metrics={},
        capacity_adjusted_min_replicas=0,
        capacity_adjusted_max_replicas=10,
        policy_state=state or {},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=now,
        config=config,
    )


def catalog_file(tmp_path, max_replicas=3):
    text = LOCAL.read_text().replace(
        "replicas: {min: 1, max: 1}", f"replicas: {{min: 1, max: {max_replicas}, startup_s: 30}}"
    )
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def policy_file(tmp_path, body=""):
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(body))
    return path


def test_meters_export_rates_and_percentiles():
    meter = DemandMeter(window_s=10.0)
    for i in range(20):
        meter.add("a", 100, 50, now=float(i))
    meter.spent("a", 0.01, now=19.0)
    out = meter.export(now=19.0)
    assert out[demand_key("a", "rps")] == pytest.approx(1.1)  # 11 arrivals in the last 10 s
    assert out[demand_key("a", "out_tps")] == pytest.approx(55.0)
    assert out[demand_key("a", "usd_h")] == pytest.approx(0.01 / 10 * 3600)
    for i, ok in enumerate((True, False, True, True)):  # the first leaves the window
        meter.judged("a", ok, now=5.0 + 5.0 * i)
    out = meter.export(now=20.0)
    assert (out[demand_key("a", "slo_judged")], out[demand_key("a", "slo_within")]) == (3, 2)
    meter.judge("b", (None, None), (500.0, 50.0), now=20.0)  # not streamed: not timed
    meter.judge("b", (0.2, 0.01), (None, None), now=20.0)  # no target
    assert demand_key("b", "slo_judged") not in meter.export(now=20.0)
    meter.judge("b", (0.2, 0.06), (500.0, 50.0), now=20.0)  # TTFT within, TPOT 60 ms over
    assert meter.export(now=20.0)[demand_key("b", "slo_within")] == 0
    lat = LatencyMeter(window_s=60)
    for ms in (10, 20, 30, 40, 500):
        lat.first_token(ms, now=1.0)
    lat.stream_done(first_at=0.0, last_at=1.0, items=11, now=1.0)
    exported = lat.export(now=2.0)
    assert exported["ttft_p50_ms"] == 30 and exported["ttft_p95_ms"] == 500
    assert exported["tpot_p50_ms"] == pytest.approx(100.0)
    assert lat.export(now=100.0) == {}
    assert percentile([5.0], 95) == 5.0


def test_context_becomes_an_observation():
    prof = load_catalog(LOCAL).profiles[0]  # max_num_seqs 16
    ctx = context(
        prof.name,
        ready=2,
        target=3,
        queued=2.0,
        metrics={"running": [20.0, 4.0], "tpot_p50_ms": [40.0, 60.0], "tpot_p95_ms": [90.0, 70.0]},
    )
    ingress = context("ingress", ready=2, target=2, metrics={
        demand_key(prof.name, "rps"): [2.0], demand_key(prof.name, "out_tps"): [300.0],
        demand_key(prof.name, "in_tps"): [800.0], "unrelated": [1.0],
        demand_key(prof.name, "slo_judged"): [30.0, 10.0],
        demand_key(prof.name, "slo_within"): [29.0, 9.0]})  # fmt: skip
    demand = demand_from_ingress(ingress)
    o = profile_observation(ctx, prof, demand[prof.name])
    assert o.replicas_ready == 2 and o.replicas_current == 3 and o.replicas_starting == 1
    assert o.requests_running == 20.0  # 16 + 4 decoding
    assert o.requests_waiting == 6.0  # 4 beyond the batch + 2 queued at handles
    assert o.tpot_ms.p50 == 50.0 and o.tpot_ms.p95 == 90.0
    assert o.arrival_rate_rps == 2.0 and o.output_tokens_per_s == 300.0
    assert (o.slo_judged, o.slo_within) == (40.0, 38.0)  # summed over ingress replicas


def test_serve_config_is_valid_and_neutral(tmp_path, caplog):
    cat_path = catalog_file(tmp_path)
    pol_path = policy_file(tmp_path, "autoscaling: {scale_up_delay_s: 0}")
    catalog = load_catalog(cat_path)
    policy = load_policy(pol_path, catalog, resolve_secrets=False)
    prof = catalog.profiles[0]
    opts = profile_serve_options(prof, policy, str(cat_path), str(pol_path))
    cfg = AutoscalingConfig.model_validate(opts["autoscaling_config"])  # Ray's own validation
    assert (cfg.min_replicas, cfg.max_replicas) == (1, 3)
    assert cfg.initial_replicas == policy.scaling[prof.name].initial_replicas == 1  # its minimum
    assert cfg.upscale_delay_s == cfg.downscale_delay_s == 0
    AutoscalingConfig.model_validate(ingress_autoscaling_config(str(cat_path), str(pol_path)))
    # Serve's wrapper around our policy returns our target unchanged (factors 1, delays 0)
    instance = cfg.policy.get_policy()(**cfg.policy.policy_kwargs)
    wrapped = _apply_autoscaling_config(instance)
    hub = hub_module.hub_for(str(cat_path), str(pol_path))
    ing = IngressAutoscaler(str(cat_path), str(pol_path))
    other = ProfileAutoscaler(str(cat_path), str(pol_path), catalog.profiles[1].name)
    heavy = {demand_key(prof.name, "rps"): [1.0], demand_key(prof.name, "out_tps"): [250.0],
             demand_key(prof.name, "in_tps"): [100.0]}  # fmt: skip
    ing(context("ingress", ready=1, target=1, metrics=heavy, now=100.0))
    other(context(catalog.profiles[1].name, ready=1, target=1, now=100.0))
    target, _ = wrapped(context(prof.name, ready=1, target=1, now=100.0, config=cfg))
    # 250 tok/s on 90 tok/s replicas (+20 %): 4 replicas over the family's two profiles
    decided = hub.decision.targets
    assert target == decided[prof.name].target  # Serve applied ours unchanged
    assert sum(t.target for t in decided.values()) == 4
    assert all(t.reason.startswith("forecast") for t in decided.values())
    assert "callback failed" not in caplog.text  # publishing and the alerters took the call


def test_restart_rederives_targets_from_serve(tmp_path):
    cat_path = catalog_file(tmp_path)
    pol_path = policy_file(tmp_path)
    catalog = load_catalog(cat_path)
    names = [p.name for p in catalog.profiles]
    policies = [ProfileAutoscaler(str(cat_path), str(pol_path), n) for n in names]
    load = {"running": [8.0, 8.0], "tpot_p50_ms": [60.0, 60.0]}
    # a controller that restarted: no state, Serve says 2 replicas of the first profile run
    ing = IngressAutoscaler(str(cat_path), str(pol_path))
    ing(context("ingress", ready=1, target=1, now=5.0, metrics={
        demand_key(names[0], "rps"): [0.6], demand_key(names[0], "out_tps"): [150.0],
        demand_key(names[0], "in_tps"): [60.0]}))  # fmt: skip
    policies[1](context(names[1], ready=1, target=1, now=5.0))
    first, _ = policies[0](context(names[0], ready=2, target=2, now=5.0, metrics=load))
    assert first == 2  # kept: 150 tok/s needs 2 replicas of 90 tok/s
    assert policies[1](context(names[1], ready=1, target=1, now=5.0))[0] == 1


def test_drain_timeout_follows_the_longest_generation(tmp_path):
    catalog = load_catalog(catalog_file(tmp_path))
    prof = catalog.profiles[0]  # 17 tok/s alone, max_model_len 2048
    capped = load_policy(policy_file(tmp_path, "defaults: {max_tokens: 170}"), catalog)
    assert drain_timeout_s(prof, capped) == pytest.approx(0.06 + 10 + 5, abs=0.1)
    uncapped = load_policy(policy_file(tmp_path, "autoscaling: {max_drain_s: 30}"), catalog)
    assert drain_timeout_s(prof, uncapped) == 30.0


def test_the_hub_plans_under_the_watched_policy_and_publishes_its_version(tmp_path):
    """The controller reads the policy through a PolicyWatcher (content, not mtime): an edit
    is planned under at the next tick and published with its version; a broken edit keeps
    the last good version."""
    cat_path = catalog_file(tmp_path)
    pol_path = policy_file(tmp_path)
    catalog = load_catalog(cat_path)
    watcher = PolicyWatcher(pol_path, catalog, interval_s=1e-6, resolve_secrets=False)
    hub = hub_module.Hub(watcher)
    published = []
    hub.on_decision.append(lambda d, o, p: published.append(status_document(d, o, p)))
    interval = watcher.current.spec.autoscaling.interval_s

    def tick(now):
        hub.file_ingress(context("ingress", ready=1, target=1, now=now))
        for p in catalog.profiles:
            hub.file_profile(p.name, context(p.name, ready=1, target=1, now=now))
        return hub.tick(now)

    tick(100.0)
    first = published[-1]["policy_version"]
    assert first == watcher.current.version
    text = pol_path.read_text() + "autoscaling: {interval_s: %s}\n" % (interval + 1)
    pol_path.write_text(text)
    tick(100.0 + interval + 1)  # the new interval
    assert published[-1]["policy_version"] == content_version(text) != first
    pol_path.write_text(text + "not: [valid\n")
    tick(100.0 + 2 * (interval + 1))
    assert published[-1]["policy_version"] == content_version(text)
    assert watcher.status().last_error


def test_a_replica_serve_starts_for_a_held_request_is_not_stopped(tmp_path):
    """Ray Serve 2.60 holds a request for a deployment at zero replicas and starts one itself
    (its wrapper's cold-start path returns 1 without calling our policy); when that replica
    runs, the hub plans again at once and keeps it, rather than answering the target of zero
    it planned before the request (which Serve, with delays 0, would apply at once)."""
    cat_path = catalog_file(tmp_path)
    catalog = load_catalog(cat_path)
    zero, other = (p.name for p in catalog.profiles)
    pol_path = policy_file(tmp_path, f"autoscaling: {{profiles: {{{zero}: {{min_replicas: 0}}}}}}")
    cfg = AutoscalingConfig(**profile_serve_options(
        catalog.profile(zero), load_policy(pol_path, catalog), str(cat_path), str(pol_path)
    )["autoscaling_config"])  # fmt: skip
    wrapped = _apply_autoscaling_config(ProfileAutoscaler(str(cat_path), str(pol_path), zero))
    ing = IngressAutoscaler(str(cat_path), str(pol_path))
    ing(context("ingress", ready=1, target=1, now=100.0))
    ProfileAutoscaler(str(cat_path), str(pol_path), other)(
        context(other, ready=1, target=1, now=100.0)
    )
    idle, _ = wrapped(context(zero, ready=0, target=0, now=100.0, config=cfg))
    assert idle == 0  # planned at zero: no request
    held, _ = wrapped(context(zero, ready=0, target=0, now=101.0, config=cfg, total=1.0))
    assert held == 1  # Serve's own cold start for the request it holds
    runs, _ = wrapped(context(zero, ready=1, target=1, now=102.0, config=cfg))
    assert runs == 1  # within the planning interval: re-planned, the replica kept
