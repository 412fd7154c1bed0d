"""orchestrator: predict each LLM request's token budget, route it to the cheapest profile that
meets its cost target, latency SLO and quality floor, and serve it with vLLM on Ray Serve."""

__version__ = "0.1.0"
