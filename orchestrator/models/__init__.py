"""Resolve a profile's `model` reference to something vLLM can load."""

from orchestrator.models.resolve import resolve_model

__all__ = ["resolve_model"]
