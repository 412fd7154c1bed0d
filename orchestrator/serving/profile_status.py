"""Whether a profile can take requests now: a replica RUNNING (kept fresh by the edge) and
not marked down by a failure the ingress saw; a profile marked down comes back once its
deployment passes a health check (`probe`, run by the edge). `broken`: never routed to,
even closed (a failure seen, or the edge's deployment unhealthy or unplaceable)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.serving.failover import ProfileHealth

log = logging.getLogger("orchestrator.ingress")


def can_serve(
    ready: Mapping[str, bool], phases: Mapping[str, str], in_flight: Callable[[str], int]
) -> bool:
    """Whether the ingress can serve a request now (its readiness, `/healthz` 200): a profile
    has a ready replica, or is closed (scaled to zero; the first request starts a replica),
    or is opening for requests already held for it. A profile opening with nothing held is a
    server still starting: not ready yet."""
    return any(ready.values()) or any(
        phase == "closed" or (phase == "opening" and in_flight(name) > 0)
        for name, phase in phases.items()
    )


class ProfileStatus:
    """Readiness from the edge plus the failures seen here."""

    def __init__(
        self,
        ready: Mapping[str, bool],
        handles: Callable[[str], Any],
        health: ProfileHealth,
        failed: Mapping[str, bool] | None = None,
    ):
        self.ready_replicas, self.handles, self.health = ready, handles, health
        self.failed: Mapping[str, bool] = failed if failed is not None else {}

    def ready(self, name: str) -> bool:
        """A replica is RUNNING and the profile is not marked down."""
        return self.ready_replicas.get(name, False) and not self.health.is_down(name)

    def broken(self, name: str) -> bool:
        """Marked down here, or its deployment unhealthy or unplaceable (the edge's view)."""
        return self.health.is_down(name) or self.failed.get(name, False)

    def down(self, profile: str, reason: str) -> None:
        """Take a profile out of routing at once (not after Ray's health check)."""
        if self.health.mark_down(profile, reason):
            log.warning("profile marked down", extra={"profile": profile, "reason": reason})

    async def probe(self) -> None:
        """Health-check the profiles marked down whose probe is due; mark the passing up."""
        for name in self.health.probe_due():
            try:
                handle = self.handles(name).options(stream=False)  # the configured ones stream
                await asyncio.wait_for(handle.check_health.remote(), timeout=2.0)
            except Exception:  # still dead, or its replica is being replaced
                continue
            self.health.mark_up(name)
            log.info("profile healthy again", extra={"profile": name})
