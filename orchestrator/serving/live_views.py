"""The router's views of every profile at this moment: priced by the policy in force, with
the live load (ready replicas, requests in flight and queued beyond the batch, the latency
scales). Rebuilt on a policy change, refreshed per request."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from orchestrator.catalog.schema import Catalog
from orchestrator.policy import Policy
from orchestrator.request import route_inputs
from orchestrator.routing.types import ProfileView
from orchestrator.routing.views import with_live
from orchestrator.serving.latency_scales import LatencyScales
from orchestrator.serving.load_book import LoadBook


class LiveViews:
    """Priced views per policy version, with the load book's and the scales' live state."""

    def __init__(
        self, catalog: Catalog, running: Mapping[str, int], load: LoadBook, scales: LatencyScales
    ):
        self.catalog, self.running, self.load, self.scales = catalog, running, load, scales
        self._priced: dict[str, ProfileView] = {}
        self._version: str | None = None

    def now(self, policy: Policy, ready: Callable[[str], bool]) -> list[ProfileView]:
        """Every profile's view now; `ready(name)`: a replica runs and it is not down."""
        if self._version != policy.version:
            self._priced = route_inputs.priced_views(self.catalog, policy)
            self._version = policy.version
        now = time.monotonic()
        live = {
            p.name: route_inputs.live_state(
                ready(p.name),
                self.load.in_flight(p.name),
                self.running.get(p.name, 0),
                self.scales.ttft.fresh(p.name, now),
                tpot_scale=self.scales.tpot.fresh(p.name, now),
                batch=p.batch_slots,  # beyond: waiting in the ingress queue
            )
            for p in self.catalog.profiles
        }
        return with_live(self._priced.values(), live)

    def slots(self, name: str) -> int:
        """Requests the profile's engines batch at once: running replicas x `batch_slots`
        (0: none running, the ingress queue does not hold its requests)."""
        return self.running.get(name, 0) * self.catalog.profile(name).batch_slots

    def seats(self, name: str) -> int:
        """Requests the profile's engines decode at once at most: running replicas x
        `engine_seats` (the short lane's bound, `scheduling.headroom`)."""
        return self.running.get(name, 0) * self.catalog.profile(name).engine_seats
