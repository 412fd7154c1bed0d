"""How a stub profile's replica is configured (the stub engine itself is
`orchestrator.serving.stub_engine`): the settings carried in its LLMConfig's
`experimental_configs`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.catalog.schema import Profile, StubEngineSpec
from orchestrator.predict.tokenizer import tokenizer_spec

CONFIG_KEY = "orchestrator_stub_engine"  # in LLMConfig.experimental_configs


class StubSettings(BaseModel):
    """What one stub replica needs: the catalog's timing plus the profile's limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timing: StubEngineSpec
    max_model_len: int = Field(ge=16)
    max_num_seqs: int = Field(256, ge=1)
    tokenizer: str


def stub_settings(profile: Profile) -> dict[str, Any] | None:
    """The `experimental_configs` entry of a stub profile's LLMConfig (None: a real engine)."""
    if profile.stub_engine is None:
        return None
    settings = StubSettings(
        timing=profile.stub_engine,
        max_model_len=profile.max_model_len,
        max_num_seqs=profile.max_num_seqs or 256,
        tokenizer=tokenizer_spec(profile),
    )
    return {CONFIG_KEY: settings.model_dump(mode="json")}


def is_stub(llm_config: Any) -> bool:
    """Whether an LLMConfig was built for a stub profile."""
    return CONFIG_KEY in (llm_config.experimental_configs or {})
