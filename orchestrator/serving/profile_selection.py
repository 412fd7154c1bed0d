"""Which profiles may serve a request's `model`, and the simple load-aware choice among them.

Pure functions. The cost-aware router replaces `least_loaded` with a priced decision; the
candidate rules (`auto` = every profile, a family name = its profiles, a profile name = that
profile) are the HTTP contract and stay here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.serving.errors import OrchestratorHTTPError

AUTO_MODEL = "auto"


def candidates_for_model(model: str | None, catalog: Catalog) -> list[Profile]:
    """Profiles that may serve `model`; 404 (OpenAI style) when it names nothing we serve."""
    if model is None or model == AUTO_MODEL:
        return list(catalog.profiles)
    family = [p for p in catalog.profiles if p.served_model_name == model]
    if family:
        return family
    pinned = [p for p in catalog.profiles if p.name == model]
    if pinned:
        return pinned
    served = ", ".join([AUTO_MODEL, *catalog.families, *(p.name for p in catalog.profiles)])
    raise OrchestratorHTTPError(
        404,
        f"The model '{model}' does not exist. Available models: {served}",
        param="model",
        code="model_not_found",
    )


def least_loaded(
    candidates: Sequence[Profile],
    ready: Mapping[str, bool],
    in_flight: Mapping[str, int],
) -> Profile:
    """The ready candidate with the lowest in-flight load per unit of capacity.

    Ties go to the cheaper, then the earlier profile. 503 when no candidate is ready.
    """
    usable = [p for p in candidates if ready.get(p.name, False)]
    if not usable:
        names = ", ".join(p.name for p in candidates)
        raise OrchestratorHTTPError(
            503,
            f"no engine is ready for this model yet (profiles: {names}); retry shortly",
            code="engine_not_ready",
            headers={"Retry-After": "5"},
        )

    def load(p: Profile) -> tuple[float, float, int]:
        capacity = p.performance.max_concurrency * max(p.replicas.min, 1)
        return (
            in_flight.get(p.name, 0) / capacity,
            p.price_per_replica_hour_usd,
            candidates.index(p),
        )

    return min(usable, key=load)
