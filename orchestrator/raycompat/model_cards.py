"""The OpenAI model card (`/v1/models` entry) ray.serve.llm builds for an `LLMConfig`.

Private API: `ray.llm._internal.serve.core.configs.openai_api_models.to_model_metadata`
(Ray 2.60). Relied on: `to_model_metadata(model_id, llm_config)` returns a pydantic model whose
`id` is `model_id`; `OpenAiIngress` takes a dict of them keyed by model id.
"""

from __future__ import annotations

from typing import Any


def model_card(model_id: str, llm_config: Any) -> Any:
    """ray.serve.llm's model card for `llm_config`, listed under `model_id`."""
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata

    return to_model_metadata(model_id, llm_config)
