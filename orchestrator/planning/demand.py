"""A demand file for `orchestrator plan`: what-if load, turned into Observations (pure).

```yaml
resources_available: {H100: 8}        # optional; omitted = unlimited
steps:                                 # one tick or several (each `at_s` seconds in)
  - at_s: 0
    families:                          # load per model family (served_model_name)
      llama-3.1-8b-instruct: {requests_per_s: 20, input_tokens: 800, output_tokens: 300}
    profiles:                          # optional per-profile figures (any ProfileObservation field)
      llama8b-fp8-ngram: {replicas_current: 2, tpot_ms: {p95: 60}}
```
A file with a single tick may give `families` / `profiles` at the top level instead of `steps`.
Family load is put on the family's first profile that has replicas (else its first profile):
the planner pools a family's load across its profiles anyway. Replicas not given start at the
catalog's `replicas.start`, later ticks at the previous tick's targets (ready at once).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.catalog.schema import Catalog
from orchestrator.planning.types import Observation, ProfileObservation


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FamilyLoad(_Strict):
    requests_per_s: float = Field(ge=0)
    input_tokens: float = Field(500, ge=0, description="mean prompt tokens per request")
    output_tokens: float = Field(250, ge=0, description="mean output tokens per request")


class DemandStep(_Strict):
    at_s: float = Field(0.0, ge=0)
    families: dict[str, FamilyLoad] = Field(default_factory=dict)
    profiles: dict[str, ProfileObservation] = Field(default_factory=dict)


class DemandFile(_Strict):
    resources_available: dict[str, float] = Field(default_factory=dict)
    steps: list[DemandStep] = Field(default_factory=list)
    families: dict[str, FamilyLoad] = Field(default_factory=dict)
    profiles: dict[str, ProfileObservation] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_form(self) -> DemandFile:
        if self.steps and (self.families or self.profiles):
            raise ValueError("give either `steps` or top-level `families`/`profiles`, not both")
        return self

    def all_steps(self) -> list[DemandStep]:
        if self.steps:
            return sorted(self.steps, key=lambda s: s.at_s)
        return [DemandStep(families=self.families, profiles=self.profiles)]


def unknown_names(demand: DemandFile, catalog: Catalog) -> list[str]:
    """Family and profile names the file uses that the catalog does not have."""
    profiles = {p.name for p in catalog.profiles}
    out = []
    for step in demand.all_steps():
        out += [f"family {f!r}" for f in step.families if f not in catalog.families]
        out += [f"profile {p!r}" for p in step.profiles if p not in profiles]
    return sorted(set(out))


def observation(
    step: DemandStep,
    catalog: Catalog,
    replicas: dict[str, int],
    resources: dict[str, float],
) -> Observation:
    """The Observation of one step; `replicas` = replicas running before it, per profile."""
    profiles: dict[str, ProfileObservation] = {}
    for p in catalog.profiles:
        given = step.profiles.get(p.name)
        base = {"replicas_current": replicas[p.name], "replicas_ready": replicas[p.name]}
        if given is not None:
            base.update(given.model_dump(exclude_unset=True))
            if "replicas_current" in given.model_fields_set and (
                "replicas_ready" not in given.model_fields_set
            ):
                base["replicas_ready"] = given.replicas_current
        profiles[p.name] = ProfileObservation(**base)
    for fam, load in step.families.items():
        members = [p.name for p in catalog.profiles if p.served_model_name == fam]
        running = [n for n in members if profiles[n].replicas_current > 0]
        target = (running or members)[0]
        o = profiles[target]
        profiles[target] = o.model_copy(
            update={
                "arrival_rate_rps": o.arrival_rate_rps + load.requests_per_s,
                "input_tokens_per_s": o.input_tokens_per_s
                + load.requests_per_s * load.input_tokens,
                "output_tokens_per_s": o.output_tokens_per_s
                + load.requests_per_s * load.output_tokens,
            }
        )
    return Observation(now_s=step.at_s, profiles=profiles, resources_available=resources)
