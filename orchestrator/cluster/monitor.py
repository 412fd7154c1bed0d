"""Keep a fresh placement report inside a Ray process (the ingress): a snapshot at most every
`period_s`, read from Ray's GCS in a worker thread so the event loop never blocks on it.

Invariant: a failed snapshot keeps the previous report (the GCS may be briefly unreachable);
before the first snapshot every profile is `pending`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from orchestrator.catalog.schema import Catalog
from orchestrator.cluster.placement import ProfilePlacement, placement_report

log = logging.getLogger("orchestrator.cluster")


class PlacementMonitor:
    def __init__(self, catalog: Catalog, app_name: str, period_s: float = 2.0):
        self._catalog = catalog
        self._app_name = app_name
        self.period_s = period_s
        self._last = float("-inf")
        self.report: dict[str, ProfilePlacement] = {
            p.name: ProfilePlacement(state="pending") for p in catalog.profiles
        }

    async def refresh(self) -> None:
        """Take a new snapshot if the last one is older than `period_s`."""
        if time.monotonic() - self._last < self.period_s:
            return
        self._last = time.monotonic()
        from orchestrator.cluster.snapshot import cluster_snapshot

        try:
            nodes, groups = await asyncio.to_thread(cluster_snapshot, self._app_name)
        except Exception:
            log.warning("could not read the cluster's nodes and placement groups", exc_info=True)
            return
        self.report = placement_report(self._catalog, nodes, groups)

    def unplaceable(self, profile: str) -> bool:
        found = self.report.get(profile)
        return found is not None and found.state == "unplaceable"

    def explain(self, message: str, profiles: Iterable[str]) -> str:
        """`message` followed by the reasons of those `profiles` that cannot be placed."""
        reasons = [
            f"{name}: {self.report[name].reason}" for name in profiles if self.unplaceable(name)
        ]
        return f"{message} ({'; '.join(reasons)})" if reasons else message
