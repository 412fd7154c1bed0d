"""A real `Prediction` for tests that need one without running the predictor."""

from __future__ import annotations

from typing import Any

from orchestrator.predict.schema import Prediction


def prediction(**fields: Any) -> Prediction:
    """A short standard answer: 11 prompt tokens, p50 8 and p90 16 output tokens, no
    reasoning; `fields` override any of them (or set the others, e.g. `n`, `profile`)."""
    return Prediction(
        **{
            "prompt_tokens": 11,
            "p50_tokens": 8,
            "p90_tokens": 16,
            "reasoning_probability": 0.0,
            "reasoning_tokens": 0,
            "query_class": "standard",
            **fields,
        }
    )
