"""The predictor's typed values: what a request will need (`Prediction`) and its inputs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.concepts import (  # noqa: F401 (one home: concepts)
    QUERY_CLASSES,
    QualityTier,
    QueryClass,
)


class RequestFeatures(BaseModel):
    """A request featurized once with the default tokenizer, plus the profile-free model output.

    The server keeps it (inside `Prediction.features`) until the request finishes and hands it
    back to `Predictor.observe`. `vector` follows `features.FEATURE_NAMES`; `lexical_ids` and
    `phrase_ids` are what the two ridge models read (token ids, hashed word cues: no text);
    `base_log_p50/p90` are log1p(tokens per choice) before any per-profile calibration or
    max_tokens cap.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    vector: tuple[float, ...]
    lexical_ids: tuple[int, ...]
    lexical_score: float
    phrase_ids: tuple[int, ...] = ()
    phrase_score: float = 0.0
    default_prompt_tokens: int
    base_log_p50: float
    base_log_p90: float
    reasoning_probability: float = Field(ge=0, le=1)


class Prediction(BaseModel):
    """What one request will need on one profile (or on an average model when profile is None).

    Invariants: p50_tokens <= p90_tokens; with max_tokens set, every token figure per choice
    is <= max_tokens (totals are per choice x n); 0 <= reasoning_probability <= 1.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_tokens: int = Field(ge=0, description="prompt tokens in the profile's tokenizer")
    prompt_tokens_exact: bool = True
    p50_tokens: int = Field(ge=0, description="median output tokens (all choices)")
    p90_tokens: int = Field(ge=0, description="90th-percentile output tokens (all choices)")
    reasoning_probability: float = Field(ge=0, le=1)
    reasoning_tokens: int = Field(ge=0, description="thinking tokens if reasoning runs")
    query_class: QueryClass
    n: int = Field(1, ge=1)
    max_tokens: int | None = Field(None, description="per-choice cap applied (request / context)")
    capped: bool = False
    reasoning_requested: bool | None = None
    profile: str | None = None
    tier_success: dict[QualityTier, float] | None = Field(
        None, description="P(each quality tier answers well): predict/difficulty.py"
    )
    features: RequestFeatures | None = Field(None, exclude=True, repr=False)

    def public(self) -> dict[str, object]:
        """The stable `orchestrator predict` line: p50/p90, reasoning, the class, tier success."""
        line: dict[str, object] = {
            "p50_tokens": self.p50_tokens,
            "p90_tokens": self.p90_tokens,
            "reasoning_probability": round(self.reasoning_probability, 4),
            "reasoning_tokens": self.reasoning_tokens,
            "class": self.query_class,
        }
        if self.tier_success is not None:
            line["tier_success"] = dict(self.tier_success)
        return line


class PredictorSettings(BaseModel):
    """Thresholds that turn quantiles into a class, and priors (stored in the artifact)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    long_context_tokens: int = Field(8192, ge=1)
    long_context_fraction: float = Field(0.5, gt=0, le=1, description="of profile max_model_len")
    long_form_tokens: int = Field(500, ge=1, description="p50 at or above this is long-form")
    reasoning_threshold: float = Field(0.5, ge=0, le=1)
    reasoning_prior_ratio: float = Field(
        2.0, gt=0, description="thinking tokens per visible answer token before traffic says"
    )
    effort_multiplier: dict[str, float] = Field(
        default_factory=lambda: {"minimal": 0.0, "low": 0.5, "medium": 1.0, "high": 2.0}
    )
