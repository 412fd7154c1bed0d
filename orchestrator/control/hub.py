"""The controller's state inside the Serve controller process (one hub per application).

Serve instantiates our policy classes (serve_policy.py) once per deployment, by value; the hub
lives here, in a module imported by reference, so every deployment's policy of one app shares
it. Each policy call files its context; `tick` runs `plan` at most once per
`autoscaling.interval_s` on the latest contexts (at once when Serve started a replica of a
profile planned at zero) and keeps the decision and the planner state.
The policy comes through a `PolicyWatcher`, as the ingress's does, on the catalog read once
when the hub is made (the ingress's catalog is fixed at start too), so both plan under the
same policy version; each decision is published with it (`status.publish_decision`).
A restarted Serve controller starts with an empty hub: the first tick re-derives the targets
from the replicas Serve reports (ScalingTickState starts from `replicas_current`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.catalog import load_catalog
from orchestrator.control.alerts import CeilingAlerter, UnplacedAlerter
from orchestrator.control.status import publish_decision
from orchestrator.planning import Observation, ScalingDecision, ScalingTickState, plan
from orchestrator.policy import Policy, PolicyWatcher
from orchestrator.signals.serve_contexts import demand_from_ingress, profile_observation

log = logging.getLogger("orchestrator.controller")


@dataclass
class Hub:
    """`watcher` is the policy file watched as the ingress watches it (`PolicyWatcher`: content
    hash through symlinks, a bad edit keeps the last good policy), checked at most once per
    `watcher.interval_s` from the Serve control loop (no thread of its own)."""

    watcher: PolicyWatcher
    _next_check: float = 0.0
    _contexts: dict[str, Any] = field(default_factory=dict)
    _ingress: Any = None
    _state: ScalingTickState = field(default_factory=ScalingTickState)
    _decision: ScalingDecision | None = None
    _last_tick: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    on_decision: list[Any] = field(default_factory=list)

    def policy(self) -> Policy:
        """The policy in force (the watcher's last good version)."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.watcher.interval_s
            self.watcher.check()
        return self.watcher.current

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
            due = self._last_tick is None or now - self._last_tick >= interval
            if not due and not self._started_by_serve():
                return self._decision
            if any(p.name not in self._contexts for p in policy.catalog.profiles):
                return self._decision  # wait for the first context of every profile
            obs = self.observation(now)
            decision, self._state = plan(obs, policy, self._state)
            self._decision = decision
            self._last_tick = now
        for callback in self.on_decision:
            try:
                callback(decision, obs, policy)
            except Exception:
                log.warning("controller decision callback failed", exc_info=True)
        return decision

    def _started_by_serve(self) -> bool:
        """A profile planned and seen at zero now runs a replica: Serve started it for a
        request it held (its cold-start path skips our policy). Plan again at once, or the
        stale target of zero would stop it before it serves."""
        d = self._decision
        if d is None:
            return False
        for name, ctx in self._contexts.items():
            seen = self._state.profiles.get(name)
            planned = d.targets.get(name)
            if (
                planned is not None
                and planned.target == 0
                and seen is not None
                and seen.replicas_seen == 0
                and int(ctx.current_num_replicas) > 0
            ):
                return True
        return False

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
            catalog = load_catalog(Path(deployments))
            hub = Hub(PolicyWatcher(policy_path, catalog, resolve_secrets=False))
            hub.on_decision.append(publish_decision)
            hub.on_decision.append(CeilingAlerter().on_decision)
            hub.on_decision.append(UnplacedAlerter().on_decision)
            _HUBS[key] = hub
        return hub
