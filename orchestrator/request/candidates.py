"""Which profiles may serve a request's `model` (the HTTP contract): `auto` = every profile,
a family name = its profiles, a profile name = that profile; anything else is a 404.
The choice among them is the router's (`orchestrator.routing.decide`)."""

from __future__ import annotations

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.request.errors import RequestError

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
    raise RequestError(
        404,
        f"The model '{model}' does not exist. Available models: {served}",
        param="model",
        code="model_not_found",
    )
