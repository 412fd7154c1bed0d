"""A demand file for `orchestrator plan`: what-if load, turned into Observations (pure).
The format is documented, with a worked example, in docs/controller.md ("What-if: plan").

```yaml
resources_available: {H100: 8}        # optional; omitted = unlimited
steps:                                 # one tick or several (each `at_s` seconds in)
  - at_s: 0
    families:                          # load per model family (served_model_name)
      llama-3.1-8b-instruct: {requests_per_s: 20, input_tokens: 800, output_tokens: 300}
    profiles:                          # optional per-profile figures (any ProfileObservation field)
      llama8b-fp8-ngram: {replicas_current: 2, requests_running: 40, tpot_ms: {p50: 60}}
  - at_s: 60
    families:
      llama-3.1-8b-instruct: {requests_per_s: 60}   # token sizes carry over from the last step
```
A file with a single tick may give `families` / `profiles` at the top level instead of `steps`.
A family's `input_tokens` / `output_tokens` not given carry over from its previous step (in
its first step: 500 and 250, the built-in `standard` reference request). A family's load is
spread over its profiles that have replicas, in proportion to their replicas (else put on
its first profile): the planner pools a family's load across its profiles anyway. Replicas not given start at the policy's
initial replicas (`ScalingBounds.initial_replicas`: what `serve` deploys), later ticks at the previous tick's targets (ready at once). Measured
latencies (`ttft_ms`, `tpot_ms`) only count for a loaded profile (the planner compares them
with the SLO under load and corrects a profile's speed from its TPOT at the observed batch),
so a step giving them without `requests_running` >= the ready replicas (or
`requests_waiting` > 0) is refused rather than silently ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.catalog.schema import Catalog
from orchestrator.planning.types import Observation, ProfileObservation


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FIRST_INPUT_TOKENS = 500.0  # a family's first step without sizes: the `standard` reference
FIRST_OUTPUT_TOKENS = 250.0


class FamilyLoad(_Strict):
    requests_per_s: float = Field(ge=0)
    input_tokens: float | None = Field(
        None, ge=0, description="mean prompt tokens per request (unset: the previous step's)"
    )
    output_tokens: float | None = Field(
        None, ge=0, description="mean output tokens per request (unset: the previous step's)"
    )


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
        """The steps in time order, each family's token sizes filled in (carried over)."""
        steps = (
            sorted(self.steps, key=lambda s: s.at_s)
            if self.steps
            else [DemandStep(families=self.families, profiles=self.profiles)]
        )
        last: dict[str, tuple[float, float]] = {}
        out = []
        for step in steps:
            filled = {}
            for fam, load in step.families.items():
                prev_in, prev_out = last.get(fam, (FIRST_INPUT_TOKENS, FIRST_OUTPUT_TOKENS))
                sizes = (
                    prev_in if load.input_tokens is None else load.input_tokens,
                    prev_out if load.output_tokens is None else load.output_tokens,
                )
                last[fam] = sizes
                filled[fam] = load.model_copy(
                    update={"input_tokens": sizes[0], "output_tokens": sizes[1]}
                )
            out.append(step.model_copy(update={"families": filled}))
        return out


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
    """The Observation of one step; `replicas` = replicas running before it, per profile.
    Raises ValueError for measured latencies the planner would ignore."""
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
        _check_latencies(step, p.name, profiles[p.name])
    for fam, load in step.families.items():
        members = [p.name for p in catalog.profiles if p.served_model_name == fam]
        running = {n: profiles[n].replicas_current for n in members if profiles[n].replicas_current}
        split = running or {members[0]: 1}
        total = sum(split.values())
        for name, weight in split.items():
            o, part = profiles[name], load.requests_per_s * weight / total
            profiles[name] = o.model_copy(
                update={
                    "arrival_rate_rps": o.arrival_rate_rps + part,
                    "input_tokens_per_s": o.input_tokens_per_s + part * (load.input_tokens or 0.0),
                    "output_tokens_per_s": o.output_tokens_per_s
                    + part * (load.output_tokens or 0.0),
                }
            )
    return Observation(now_s=step.at_s, profiles=profiles, resources_available=resources)


def _check_latencies(step: DemandStep, name: str, o: ProfileObservation) -> None:
    """Measured latencies on an unloaded profile would be ignored by the planner: refuse."""
    given = (
        [f for f in ("ttft_ms", "tpot_ms") if f in step.profiles[name].model_fields_set]
        if (name in step.profiles)
        else []
    )
    loaded = o.replicas_ready > 0 and (
        o.requests_running >= o.replicas_ready or o.requests_waiting > 0
    )
    if given and not loaded:
        raise ValueError(
            f"step at_s {step.at_s:g}: profiles.{name}.{given[0]}: measured latencies count "
            f"only for a loaded profile; give requests_running >= its ready replicas "
            f"({o.replicas_ready}) or requests_waiting > 0, or drop {given[0]}"
        )
