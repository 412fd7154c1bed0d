"""Ray Serve autoscaling policy classes that apply the planner's targets (edge: Serve API).

Serve (2.60) runs a deployment's `AutoscalingConfig.policy` in its controller every control
loop: a class given as `policy_function` is instantiated once with `policy_kwargs` and called
with an `AutoscalingContext`; it returns (replicas, policy_state). Serve then applies its own
scaling factors, delays and min/max bounds; `autoscaling_config` below sets the factors to 1
and the delays to 0 so the planner's hysteresis is what governs (the bounds stay the
catalog's: the policy's narrower ones are the planner's to apply, and follow hot reloads).
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.control.hub import hub_for
from orchestrator.control.ingress_scaling import (
    INGRESS_DOWNSCALE_DELAY_S,
    INGRESS_UPSCALE_DELAY_S,
    IngressScaling,
)

log = logging.getLogger("orchestrator.controller")

PROFILE_POLICY = "orchestrator.control.serve_policy:ProfileAutoscaler"
INGRESS_POLICY = "orchestrator.control.serve_policy:IngressAutoscaler"


class ProfileAutoscaler:
    """One profile deployment's policy: file the context, plan when due, return the target."""

    def __init__(self, deployments: str, policy: str, profile: str):
        self._hub = hub_for(deployments, policy)
        self._profile = profile

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        target = None
        try:
            self._hub.file_profile(self._profile, ctx)
            self._hub.tick(ctx.current_time)
            target = self._hub.target(self._profile)
        except Exception:  # never break Serve's control loop: hold the current target
            log.exception("controller tick failed; holding %s", self._profile)
        if target is None:  # no plan yet: keep what Serve has
            target = ctx.target_num_replicas
        return target, ctx.policy_state


class IngressAutoscaler:
    """The ingress deployment's policy: its context carries the predicted demand per profile
    (custom metrics), which it files for the planner; the ingress itself scales by its ongoing
    requests (Serve's queue-length policy; Serve then applies the config's bounds and delays)."""

    def __init__(self, deployments: str, policy: str):
        self._hub = hub_for(deployments, policy)

    def __call__(self, ctx: Any) -> tuple[float, dict[str, Any]]:
        try:
            self._hub.file_ingress(ctx)
            self._hub.tick(ctx.current_time)
        except Exception:  # never break Serve's control loop
            log.exception("controller tick failed (ingress context)")
        return ingress_replicas_wanted(ctx), ctx.policy_state


def ingress_replicas_wanted(ctx: Any) -> float:
    """Replicas for the ingress's ongoing requests at its target per replica (before Serve's
    bounds and delays); the current target when that cannot be computed."""
    from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy

    if ctx.config is None:  # not given by Serve (only by tests of the demand path)
        return ctx.target_num_replicas
    try:
        wanted, _ = replica_queue_length_autoscaling_policy(ctx)
    except Exception:  # never break Serve's control loop: hold the current target
        log.exception("ingress scaling failed; holding %s replicas", ctx.target_num_replicas)
        return ctx.target_num_replicas
    return wanted


def autoscaling_config(
    *,
    policy_function: str,
    policy_kwargs: dict[str, Any],
    min_replicas: int,
    max_replicas: int,
    initial_replicas: int | None = None,
    look_back_period_s: float = 15.0,
    upscale_delay_s: float = 0.0,
    downscale_delay_s: float = 0.0,
    target_ongoing_requests: float | None = None,
) -> dict[str, Any]:
    """A Serve `autoscaling_config` whose own factors are neutral (delays 0 unless given)."""
    cfg: dict[str, Any] = {
        "min_replicas": min_replicas,
        "max_replicas": max(1, max_replicas),
        "upscale_delay_s": upscale_delay_s,
        "downscale_delay_s": downscale_delay_s,
        "downscale_to_zero_delay_s": 0.0,
        "upscaling_factor": 1.0,
        "downscaling_factor": 1.0,
        "look_back_period_s": look_back_period_s,
        "policy": {"policy_function": policy_function, "policy_kwargs": policy_kwargs},
    }
    if initial_replicas is not None:
        cfg["initial_replicas"] = initial_replicas
    if target_ongoing_requests is not None:
        cfg["target_ongoing_requests"] = target_ongoing_requests
    return cfg


DRAIN_MARGIN_S = 5.0


def drain_timeout_s(profile: Any, policy: Any) -> float:
    """graceful_shutdown_timeout_s of a profile's replicas: its longest generation (the largest
    max_tokens any tenant may ask for there, else max_model_len) at single-stream speed, plus
    the first-token time and a margin, capped by the policy's `autoscaling.max_drain_s`."""
    longest = profile.max_model_len
    caps = []
    for tenant in policy.reachable_tenants():
        for rc in ("standard", "long_form", "reasoning", "long_context"):
            if profile.name in tenant.eligible_profiles(rc):
                caps.append(tenant.limits(rc).max_tokens)
    if caps and all(c is not None for c in caps):
        longest = min(longest, max(caps))
    perf = profile.performance
    seconds = perf.ttft_ms_base / 1000.0 + longest / perf.single_stream_tokens_per_s
    return round(min(policy.spec.autoscaling.max_drain_s, seconds + DRAIN_MARGIN_S), 1)


def profile_serve_options(
    profile: Any, policy: Any, deployments_path: str, policy_path: str
) -> dict[str, Any]:
    """Serve deployment options of a profile under the controller (the policy's replica
    bounds, which may lower the catalog's minimum)."""
    bounds = policy.scaling[profile.name]
    return {
        "autoscaling_config": autoscaling_config(
            policy_function=PROFILE_POLICY,
            policy_kwargs={
                "deployments": deployments_path,
                "policy": policy_path,
                "profile": profile.name,
            },
            min_replicas=bounds.min_replicas,
            max_replicas=bounds.max_replicas,
            initial_replicas=bounds.initial_replicas,
        ),
        "graceful_shutdown_timeout_s": drain_timeout_s(profile, policy),
    }


def ingress_autoscaling_config(
    deployments_path: str, policy_path: str, scaling: IngressScaling | None = None
) -> dict[str, Any]:
    """The ingress between its min and max replicas, by ongoing requests (`IngressScaling`);
    its policy also carries the demand to the planner."""
    scaling = scaling or IngressScaling()
    return autoscaling_config(
        policy_function=INGRESS_POLICY,
        policy_kwargs={"deployments": deployments_path, "policy": policy_path},
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        upscale_delay_s=INGRESS_UPSCALE_DELAY_S,
        downscale_delay_s=INGRESS_DOWNSCALE_DELAY_S,
        target_ongoing_requests=scaling.target_ongoing_requests,
    )
