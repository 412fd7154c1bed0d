"""Helpers shared by the predictor tests."""

from __future__ import annotations


def chat(text: str, **params) -> dict:
    """A one-turn OpenAI chat body."""
    return {"messages": [{"role": "user", "content": text}], **params}
