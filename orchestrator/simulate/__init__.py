"""Trace-replay simulator: the product's predictor, router and controller against baselines.

    requests = load_traffic(path)                       # Azure CSV, JSONL or a usage ledger
    result = simulate(catalog, policy, requests)        # every policy, same traffic
    result.to_json()["policies"]["ours"]["cost_usd"]

`replay(catalog, policy, requests)` runs only ours (for validation against the real engine).
docs/benchmark.md describes the replica model and the baselines.
"""

from orchestrator.simulate.run import (
    ALL_POLICIES,
    BASELINES,
    PolicyRun,
    SimResult,
    prepare,
    simulate,
)
from orchestrator.simulate.traffic import SimRequest, load_jsonl, load_traffic, rescale


def replay(catalog, policy, requests, *, policies=("ours",), seed: int = 0) -> SimResult:
    """Simulate a recorded load (e.g. a bench run) under `policies` (default: ours only)."""
    return simulate(catalog, policy, requests, policies=policies, seed=seed)


__all__ = [
    "ALL_POLICIES",
    "BASELINES",
    "PolicyRun",
    "SimRequest",
    "SimResult",
    "load_jsonl",
    "load_traffic",
    "prepare",
    "replay",
    "rescale",
    "simulate",
]
