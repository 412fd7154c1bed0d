"""The ingress scales by its ongoing requests: Serve's own wrapper and config around our policy
(no cluster), within the bounds set by `IngressScaling`."""

from __future__ import annotations

import pytest
from ray.serve import autoscaling_policy
from ray.serve._private.common import DeploymentID, ReplicaID
from ray.serve.autoscaling_policy import _apply_autoscaling_config
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from orchestrator.control.ingress_scaling import INGRESS_UPSCALE_DELAY_S, IngressScaling
from orchestrator.control.serve_policy import IngressAutoscaler, ingress_autoscaling_config
from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY


def _context(config, *, running: int, target: int, ongoing: float, state=None, now=0.0):
    dep = DeploymentID(name="ingress", app_name="orchestrator")
    replicas = [ReplicaID(unique_id=f"i-{n}", deployment_id=dep) for n in range(running)]
    return AutoscalingContext(
        deployment_id=dep,
        deployment_name="ingress",
        app_name="orchestrator",
        current_num_replicas=running,
        target_num_replicas=target,
        running_replicas=replicas,
        total_num_requests=ongoing,
        total_queued_requests=0.0,
        aggregated_metrics={},
        raw_metrics={},
        capacity_adjusted_min_replicas=config.min_replicas,
        capacity_adjusted_max_replicas=config.max_replicas,
        policy_state=state or {},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=now,
        config=config,
    )


@pytest.fixture
def policy(tmp_path):
    # files of this test's own (the controller keeps one hub per pair of paths and process)
    deployments = tmp_path / DEFAULT_DEPLOYMENTS.name
    deployments.write_text(DEFAULT_DEPLOYMENTS.read_text())
    policy_path = tmp_path / DEFAULT_POLICY.name
    policy_path.write_text(DEFAULT_POLICY.read_text())
    scaling = IngressScaling(min_replicas=1, max_replicas=4, target_ongoing_requests=10)
    raw = ingress_autoscaling_config(str(deployments), str(policy_path), scaling)
    config = AutoscalingConfig.model_validate(raw)  # Ray's own validation
    instance = config.policy.get_policy()(**config.policy.policy_kwargs)
    assert isinstance(instance, IngressAutoscaler)
    return config, _apply_autoscaling_config(instance)


def test_config_carries_the_bounds_and_target(policy):
    config, _ = policy
    assert (config.min_replicas, config.max_replicas) == (1, 4)
    assert config.target_ongoing_requests == 10
    assert config.upscale_delay_s == INGRESS_UPSCALE_DELAY_S


def test_sustained_load_adds_replicas_after_the_delay(policy, monkeypatch):
    config, wrapped = policy
    clock = [1000.0]
    monkeypatch.setattr(autoscaling_policy.time, "time", lambda: clock[0])
    ctx = _context(config, running=1, target=1, ongoing=35.0)
    replicas, state = wrapped(ctx)
    assert replicas == 1  # wanted 3.5 replicas, but not for upscale_delay_s yet
    clock[0] += INGRESS_UPSCALE_DELAY_S
    replicas, _ = wrapped(_context(config, running=1, target=1, ongoing=35.0, state=state))
    assert replicas == 4  # ceil(35 / 10)


def test_idle_ingress_holds_its_replicas_until_the_down_delay(policy, monkeypatch):
    config, wrapped = policy
    clock = [1000.0]
    monkeypatch.setattr(autoscaling_policy.time, "time", lambda: clock[0])
    replicas, state = wrapped(_context(config, running=3, target=3, ongoing=0.0))
    assert replicas == 3
    clock[0] += config.downscale_delay_s
    replicas, _ = wrapped(_context(config, running=3, target=3, ongoing=0.0, state=state))
    assert replicas < 3  # Serve then clips to min_replicas
