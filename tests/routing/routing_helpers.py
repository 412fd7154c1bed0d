"""The router tests' stock inputs: an easy and a hard token budget, a Llama request and a
saturated replica."""

from __future__ import annotations

from orchestrator.replica_model import LiveState
from orchestrator.routing import RouteRequest, TokenBudget

EASY = TokenBudget(
    p50_output_tokens=120,
    p90_output_tokens=300,
    reasoning_probability=0.05,
    reasoning_tokens=200,
    query_class="standard",
)
HARD = TokenBudget(
    p50_output_tokens=600,
    p90_output_tokens=1500,
    reasoning_probability=0.95,
    reasoning_tokens=3000,
    query_class="reasoning",
)
LLAMA = RouteRequest(prompt_tokens=200, model="llama-3.1-8b-instruct")
# one replica with all 64 slots taken and 400 requests waiting
SATURATED = LiveState(replicas_running=1, requests_in_flight=64, requests_queued=400)
