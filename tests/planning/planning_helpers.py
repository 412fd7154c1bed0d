"""A small two-family GPU-like catalog and policies for planner tests (built in memory)."""

from __future__ import annotations

from orchestrator.catalog import Catalog
from orchestrator.planning import Observation, ProfileObservation
from orchestrator.policy import Policy
from orchestrator.policy.loader import load_policy_text
from tests.policy.policy_helpers import policy_text


def profile(name: str, family: str = "fam", **over) -> dict:
    base = {
        "name": name,
        "model": f"org/{name}",
        "served_model_name": family,
        "max_model_len": 8192,
        "accelerator": {"type": "L4", "count": 1},
        "price_per_replica_hour_usd": 1.0,
        "replicas": {"min": 0, "max": 10, "startup_s": 60},
        "performance": {
            "output_tokens_per_s": 1000,
            "single_stream_tokens_per_s": 100,
            "prefill_tokens_per_s": 20000,
            "max_concurrency": 16,
            "ttft_ms_base": 30,
        },
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def catalog(*profiles: dict) -> Catalog:
    return Catalog.model_validate({"profiles": list(profiles)})


def policy(cat: Catalog, body: str = "") -> Policy:
    return load_policy_text(policy_text(body), "policy.yaml", cat)


def load(out_tps: float, *, in_ratio: float = 2.0, tokens_per_request: float = 250, **over):
    """Observation of one profile carrying `out_tps` predicted output tokens/s."""
    fields = {
        "arrival_rate_rps": out_tps / tokens_per_request,
        "input_tokens_per_s": out_tps * in_ratio,
        "output_tokens_per_s": out_tps,
    }
    fields.update(over)
    return ProfileObservation(**fields)


def observe(now: float, **profiles: ProfileObservation) -> Observation:
    return Observation(now_s=now, profiles={k.replace("_", "-"): v for k, v in profiles.items()})
