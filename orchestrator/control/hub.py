"""The controller's state inside the Serve controller process (one hub per application).

Serve instantiates our policy classes (serve_policy.py) once per deployment, by value; the hub
lives here, in a module imported by reference, so every deployment's policy of one app shares
it. Each policy call files its context; `tick` runs `plan` at most once per
`autoscaling.interval_s` on the latest contexts and keeps the decision and the planner state.
A restarted Serve controller starts with an empty hub: the first tick re-derives the targets
from the replicas Serve reports (PlanState starts from `replicas_current`).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.catalog import load_catalog
from orchestrator.control.alerts import CeilingAlerter, UnplacedAlerter
from orchestrator.control.observe import demand_from_ingress, profile_observation
from orchestrator.control.status import publish_decision
from orchestrator.planning import Observation, PlanState, ScalingDecision, plan
from orchestrator.policy import Policy
from orchestrator.policy.loader import load_policy

log = logging.getLogger("orchestrator.controller")


@dataclass
class Hub:
    deployments: str
    policy_path: str
    _policy: Policy | None = None
    _mtime: float | None = None
    _contexts: dict[str, Any] = field(default_factory=dict)
    _ingress: Any = None
    _state: PlanState = field(default_factory=PlanState)
    _decision: ScalingDecision | None = None
    _last_tick: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    on_decision: list[Any] = field(default_factory=list)

    def policy(self) -> Policy:
        """The policy in force (reloaded when the file changes; a bad edit keeps the last)."""
        try:
            mtime = os.stat(self.policy_path).st_mtime
        except OSError:
            mtime = None
        if self._policy is None or (mtime is not None and mtime != self._mtime):
            try:
                catalog = load_catalog(Path(self.deployments))
                self._policy = load_policy(self.policy_path, catalog, resolve_secrets=False)
                self._mtime = mtime
            except Exception:
                if self._policy is None:
                    raise
                log.warning("policy reload failed; planning with the last good policy")
                self._mtime = mtime
        return self._policy

    def file_profile(self, profile: str, ctx: Any) -> None:
        self._contexts[profile] = ctx

    def file_ingress(self, ctx: Any) -> None:
        self._ingress = ctx

    def observation(self, now: float) -> Observation:
        policy = self.policy()
        demand = demand_from_ingress(self._ingress) if self._ingress is not None else {}
        profiles = {}
        for p in policy.catalog.profiles:
            ctx = self._contexts.get(p.name)
            if ctx is not None:
                profiles[p.name] = profile_observation(ctx, p, demand.get(p.name))
        return Observation(now_s=now, profiles=profiles)

    def tick(self, now: float) -> ScalingDecision | None:
        """Plan if an interval has passed since the last plan (and every profile filed)."""
        with self._lock:
            policy = self.policy()
            interval = policy.spec.autoscaling.interval_s
            if self._last_tick is not None and now - self._last_tick < interval:
                return self._decision
            if any(p.name not in self._contexts for p in policy.catalog.profiles):
                return self._decision  # wait for the first context of every profile
            obs = self.observation(now)
            decision, self._state = plan(obs, policy, self._state)
            self._decision = decision
            self._last_tick = now
        for callback in self.on_decision:
            try:
                callback(decision, obs)
            except Exception:
                log.warning("controller decision callback failed", exc_info=True)
        return decision

    def target(self, profile: str) -> int | None:
        d = self._decision
        if d is None or profile not in d.targets:
            return None
        return d.targets[profile].target

    @property
    def decision(self) -> ScalingDecision | None:
        return self._decision


_HUBS: dict[tuple[str, str], Hub] = {}
_HUBS_LOCK = threading.Lock()


def hub_for(deployments: str, policy_path: str) -> Hub:
    """The process-wide hub of one application (created on first use)."""
    key = (deployments, policy_path)
    with _HUBS_LOCK:
        hub = _HUBS.get(key)
        if hub is None:
            hub = Hub(deployments, policy_path)
            hub.on_decision.append(publish_decision)
            hub.on_decision.append(CeilingAlerter().on_decision)
            hub.on_decision.append(UnplacedAlerter().on_decision)
            _HUBS[key] = hub
        return hub
