"""CPU engines that share one node's cores: disjoint cores, and capacity as a share. Pure.

A vLLM CPU engine runs one OpenMP thread per core it is given. Two engines on one node that
each start `omp_threads` threads over ALL cores (`VLLM_CPU_OMP_THREADS_BIND=nobind`) fight:
each engine's threads meet at a barrier every layer, and a thread preempted by the other
engine's holds all of its own up (measured on 2 cores: the default two-profile catalog gave
6.1 output tokens/s at 4 concurrent requests, one profile alone 23.2).

`share_node_cores(catalog, node_cpus)` returns the catalog as it runs on ONE node with
`node_cpus` cores (`orchestrator serve`'s local cluster): every CPU engine profile gets its own
consecutive cores (its `omp_threads`, or `cpus`, when they all fit; else the cores split as
evenly as they go), and with them

- `env`: `VLLM_CPU_OMP_THREADS_BIND` = its core ids, `OMP_NUM_THREADS` = their number;
- `accelerator.cpus` and `omp_threads` = that number (Ray reserves what the engine uses);
- `performance`: the catalog's figures (measured with `omp_threads` threads) times the share
  it got (cores given / threads measured), so the router's replica model, the planner and the
  simulator, which all read these figures, see the node's capacity split between the
  profiles, not counted once per profile.

Nothing changes when fewer than two CPU engines would share the node, when any of them may run
more than one replica (replicas of a profile share its environment, so they would share its
cores), when a profile sets the binding in its own `env`, or when there are more engines than
cores. Stub engines (no model) take no cores.
"""

from __future__ import annotations

from orchestrator.catalog.schema import Catalog, Profile

BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"
THREADS_ENV = "OMP_NUM_THREADS"


def threads_measured(profile: Profile) -> int:
    """The OpenMP threads a CPU profile's figures were measured with."""
    acc = profile.accelerator
    return acc.omp_threads or max(1, int(round(acc.cpus)))


def _engines(catalog: Catalog) -> list[Profile]:
    return [p for p in catalog.profiles if not p.accelerator.is_gpu and p.stub_engine is None]


def core_split(wanted: list[int], node_cpus: int) -> list[int] | None:
    """Cores per engine: what each wants when all fit, else an even split (earlier engines
    take the remainder, never more than they want); None when there are more engines than
    cores."""
    if len(wanted) > node_cpus:
        return None
    if sum(wanted) <= node_cpus:
        return list(wanted)
    base, extra = divmod(node_cpus, len(wanted))
    return [min(w, base + (1 if i < extra else 0)) for i, w in enumerate(wanted)]


def share_node_cores(catalog: Catalog, node_cpus: int) -> Catalog:
    """The catalog with disjoint cores and shared capacity for its CPU engines (see above)."""
    engines = _engines(catalog)
    if len(engines) < 2 or any(p.replicas.max > 1 for p in engines):
        return catalog
    if any(BIND_ENV in p.env or THREADS_ENV in p.env for p in engines):
        return catalog  # the catalog binds its engines itself
    wanted = [threads_measured(p) for p in engines]
    split = core_split(wanted, node_cpus)
    if split is None:
        return catalog
    bound: dict[str, Profile] = {}
    first = 0
    for profile, want, give in zip(engines, wanted, split, strict=True):
        cores = list(range(first, first + give))
        first += give
        bound[profile.name] = _bind(profile, cores, give / want)
    return catalog.model_copy(update={"profiles": [bound.get(p.name, p) for p in catalog.profiles]})


def _bind(profile: Profile, cores: list[int], share: float) -> Profile:
    ids = f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0])
    perf = profile.performance
    data = profile.model_dump(mode="json", exclude_none=True)
    data["env"] = {**profile.env, BIND_ENV: ids, THREADS_ENV: str(len(cores))}
    data["accelerator"] = {**data["accelerator"], "cpus": len(cores), "omp_threads": len(cores)}
    data["performance"] = {
        **data["performance"],
        "output_tokens_per_s": perf.output_tokens_per_s * share,
        "single_stream_tokens_per_s": perf.single_stream_tokens_per_s * share,
        "prefill_tokens_per_s": perf.prefill_tokens_per_s * share,
    }
    return Profile.model_validate(data)
