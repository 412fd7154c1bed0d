"""The router's views of every profile at this moment: priced by the policy in force, with
the live state the simulator gives its own (`request.live.live_state`): replicas running
and starting, requests in flight and queued beyond the batch, the latency scales, and a
closed profile's opening price. Rebuilt on a policy change, refreshed per request."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.policy import Policy
from orchestrator.request import live, route_inputs
from orchestrator.routing.types import Decision, ProfileView
from orchestrator.routing.views import with_live
from orchestrator.serving.latency_scales import LatencyScales
from orchestrator.serving.load_book import LoadBook
from orchestrator.signals.opening import OpeningDemand


class StartClock:
    """When each profile's first replica began starting with none running: the start-up
    left (`replicas.startup_s` minus the time since), the simulator's exact figure's stand-in."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def first_ready_ms(self, profile: str, startup_s: float, starting: bool, now: float) -> float:
        if not starting:
            self._since.pop(profile, None)
            return 0.0
        since = self._since.setdefault(profile, now)
        return 1000.0 * max(0.0, startup_s - (now - since))


class LiveViews:
    """Priced views per policy version, with the replicas', the load book's and the scales'
    live state. `running` / `starting`: replicas per profile (kept fresh by the edge)."""

    def __init__(
        self,
        catalog: Catalog,
        running: Mapping[str, int],
        load: LoadBook,
        scales: LatencyScales,
        starting: Mapping[str, int] | None = None,
    ):
        self.catalog, self.running, self.load, self.scales = catalog, running, load, scales
        self.starting: Mapping[str, int] = starting if starting is not None else {}
        self.opening = OpeningDemand()  # requests a closed profile lost on its opening price
        self.start_clock = StartClock()
        self._priced: dict[str, ProfileView] = {}
        self._version: str | None = None

    def now(self, policy: Policy, broken: Callable[[str], bool]) -> list[ProfileView]:
        """Every profile's view now; `broken(name)`: the profile must not be routed to
        (a failure seen, an unhealthy or unplaceable deployment), whatever runs."""
        if self._version != policy.version:
            self._priced = route_inputs.priced_views(self.catalog, policy)
            self._version = policy.version
        now = time.monotonic()
        states = {}
        for p in self.catalog.profiles:
            states[p.name] = live.live_state(
                p,
                policy,
                self._replicas(p, policy, broken, now),
                self.load.in_flight(p.name),
                batch=p.batch_slots,  # beyond: waiting in the ingress queue
                opening_rps=self.opening.rps(p.name, now),
                ttft_scale=self.scales.ttft.fresh(p.name, now),
                tpot_scale=self.scales.tpot.fresh(p.name, now),
            )
        return with_live(self._priced.values(), states)

    def _replicas(
        self, p: Profile, policy: Policy, broken: Callable[[str], bool], now: float
    ) -> live.Replicas:
        running, starting = self.running.get(p.name, 0), self.starting.get(p.name, 0)
        first_ready_ms = self.start_clock.first_ready_ms(
            p.name, p.replicas.startup_s, running == 0 and starting > 0, now
        )
        return live.Replicas(
            running=running,
            starting=starting,
            first_ready_ms=first_ready_ms,
            broken=broken(p.name),
            may_open=running + starting == 0 and live.may_open(p, policy),
        )

    def phases(self, policy: Policy, broken: Callable[[str], bool]) -> dict[str, live.Phase]:
        """Each profile's phase now (`request.live.phase`): open, opening, closed (none runs,
        one may start at the first request) or unhealthy."""
        now = time.monotonic()
        return {
            p.name: live.phase(
                self._replicas(p, policy, broken, now), self.load.in_flight(p.name) > 0
            )
            for p in self.catalog.profiles
        }

    def decided(self, decision: Decision) -> None:
        """A decision made: when routed, a closed profile it passed over for its opening price
        is demand that profile would have had (it lowers the price; `signals/opening.py`)."""
        if decision.profile is not None:
            self.opening.record(decision, time.monotonic())

    def slots(self, name: str) -> int:
        """Requests the profile's engines batch at once: running replicas x `batch_slots`
        (0: none running, the ingress queue does not hold its requests: Serve holds them
        until its first replica serves)."""
        return self.running.get(name, 0) * self.catalog.profile(name).batch_slots

    def seats(self, name: str) -> int:
        """Requests the profile's engines decode at once at most: running replicas x
        `engine_seats` (the short lane's bound, `scheduling.headroom`)."""
        return self.running.get(name, 0) * self.catalog.profile(name).engine_seats
