"""Small synthetic traffic on the GPU example catalog (no shared data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import load_policy_text
from orchestrator.predict import Predictor
from orchestrator.simulate.traffic import SimRequest
from tests.policy.policy_helpers import policy_text

GPU = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
POLICY_TEXT = policy_text("""
default_tenant:
  name: default
  quality_floor: {min_tier: medium}
  latency: {ttft_p95_ms: 2000, tpot_p95_ms: 40, e2e_p95_ms: 60000}
  actions: {on_cost_cap: [downgrade, cap_tokens]}
autoscaling:
  headroom: 0.2
  scale_to_zero: true
""")
PROMPTS = [
    ("Say hi.", "medium"),
    ("Write a long essay on the history of the Roman empire, with sources.", "medium"),
    ("Prove that there are infinitely many primes and explain each step.", "large"),
    ("Write a Rust program that parses JSON without any crate and explain it.", "frontier"),
    ("Translate 'good morning' to French.", "medium"),
    ("Summarize the plot of Hamlet in three sentences.", "medium"),
]


@pytest.fixture(scope="session")
def catalog():
    return GPU


@pytest.fixture(scope="session")
def policy():
    return load_policy_text(POLICY_TEXT, "policy.yaml", GPU)


@pytest.fixture(scope="session")
def predictor():
    return Predictor(store=None)


def make_requests(n: int = 400, rate: float = 4.0, seed: int = 1) -> list[SimRequest]:
    """Poisson arrivals of the PROMPTS with log-normal true lengths."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, size=n))
    out = []
    for i in range(n):
        k = int(rng.integers(len(PROMPTS)))
        text, tier = PROMPTS[k]
        body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
        out.append(
            SimRequest(
                rid=i,
                arrival_s=float(t[i] - t[0]),
                body=body,
                prompt_tokens=int(rng.integers(50, 3000)),
                output_tokens=int(max(1, rng.lognormal(5.0, 0.8))),
                tier=tier,
                body_key=("test", k),
            )
        )
    return out


@pytest.fixture()
def requests() -> list[SimRequest]:
    return make_requests()
