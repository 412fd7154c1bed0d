"""The request spec: everything the request path reads from a body, read once.

    targets = caller_targets(headers, body.pop("orchestrator", None))
    spec = read_spec(body, "chat", targets)

Pure (no HTTP, no engine). Every later stage (bounds, the predictor's input, the router's
inputs, failover, the executor) reads the spec, never the body's fields again. Invariants:
- a field of the wrong type or range is a `RequestError` 400 whose `param` is the field as
  the client sent it (`reasoning.effort`, `max_completion_tokens`, ...);
- `max_tokens` is `max_completion_tokens` when set and not null, else `max_tokens` (OpenAI's
  and vLLM's reading); 0 or a negative number is refused, null is "not set";
- the reasoning wish is `chat_template_kwargs.enable_thinking` when it is a boolean, else
  the effort (`reasoning_effort`, or the Responses API's `reasoning.effort`): `none` and
  `minimal` ask for no thinking, `low` / `medium` / `high` for thinking;
- a spec is never mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.predict.request import PredictorInputError, RequestWishes, read_wishes
from orchestrator.request.errors import RequestError

Endpoint = Literal["chat", "completions"]
COST_HEADER = "x-cost-target-usd"
SLO_HEADER = "x-latency-slo-ms"


@dataclass(frozen=True, slots=True)
class CallerTargets:
    """The caller's own per-request targets (headers, else the body's `orchestrator` object)."""

    cost_target_usd: float | None = None
    latency_slo_ms: float | None = None


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request's wishes, read once from its body (see the module docstring)."""

    endpoint: Endpoint
    model: str | None  # family, profile or `auto`; None = not given
    wishes: RequestWishes  # max_tokens, n, the reasoning wish (with the fields they came from)
    targets: CallerTargets = CallerTargets()
    best_of: int | None = None
    stream: bool = False
    wants_usage: bool = False  # stream_options.include_usage
    wants_continuous_usage: bool = False  # usage on every chunk (with include_usage)
    needs_tool_parser: bool = False  # tools the model may be made to call
    return_token_ids: bool = False  # the client asked for token ids itself
    prompt_param: str = "messages"  # the field holding the prompt (`messages` / `prompt`)
    # the share of the list price this request pays: 1 for a client's request; a batch line's
    # is its tenant's `batch.price_factor` (set by the server, never read from the body)
    price_factor: float = 1.0
    # a batch line: waits after every interactive request in the ingress queue and the engines
    background: bool = False

    @property
    def max_tokens(self) -> int | None:
        """The client's cap on generated tokens per choice (None: not set)."""
        return self.wishes.max_tokens

    @property
    def max_tokens_param(self) -> str:
        """The field the cap came from, as the client sent it."""
        return self.wishes.max_tokens_param or "max_tokens"

    @property
    def choices(self) -> int:
        """Sequences generated per prompt (`n`, default 1)."""
        return self.wishes.n

    @property
    def wants_reasoning(self) -> bool | None:
        """The explicit reasoning wish (None: the body says nothing)."""
        return self.wishes.reasoning


def _int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def needs_tool_parser(body: Mapping[str, Any]) -> bool:
    """`tools` the model may be made to call: any tool_choice but "none" ("auto", vLLM's
    default with tools, "required" and a named function all need the engine's tool parser in
    vLLM 0.32: `OnlineRenderer` refuses them without one)."""
    return bool(body.get("tools")) and body.get("tool_choice") != "none"


def read_spec(
    body: Mapping[str, Any], endpoint: Endpoint, targets: CallerTargets = CallerTargets()
) -> RequestSpec:
    """The spec of a decoded JSON body (the `orchestrator` object already taken out)."""
    try:
        wishes = read_wishes(dict(body))
    except PredictorInputError as exc:
        raise RequestError(400, str(exc), param=exc.param, code="invalid_value") from None
    options = body.get("stream_options")
    options = options if isinstance(options, dict) else {}
    return RequestSpec(
        endpoint=endpoint,
        model=body.get("model"),
        wishes=wishes,
        targets=targets,
        best_of=_int(body, "best_of"),
        stream=bool(body.get("stream")),
        wants_usage=bool(options.get("include_usage")),
        wants_continuous_usage=bool(
            options.get("include_usage") and options.get("continuous_usage_stats")
        ),
        needs_tool_parser=needs_tool_parser(body),
        return_token_ids=bool(body.get("return_token_ids")),
        prompt_param="messages" if "messages" in body else "prompt",
    )


def _number(value: Any, name: str, *, positive: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RequestError(
            400, f"'{name}' must be a number, got {value!r}", param=name, code="invalid_value"
        ) from None
    if number != number or number < 0 or (positive and number == 0):  # NaN, negative, zero
        bound = "greater than 0" if positive else "at least 0"
        raise RequestError(
            400, f"'{name}' must be {bound}, got {value!r}", param=name, code="invalid_value"
        )
    return number


def caller_targets(headers: Mapping[str, str], extension: Any) -> CallerTargets:
    """Per-request targets: headers first, then `{"orchestrator": {...}}` in the body."""
    if extension is not None and not isinstance(extension, dict):
        raise RequestError(400, "'orchestrator' must be an object", param="orchestrator")
    ext = extension or {}
    unknown = set(ext) - {"cost_target_usd", "latency_slo_ms"}
    if unknown:
        raise RequestError(
            400,
            f"unknown field(s) in 'orchestrator': {', '.join(sorted(unknown))}",
            param="orchestrator",
        )
    cost, slo = headers.get(COST_HEADER), headers.get(SLO_HEADER)
    if cost is not None:
        cost_usd: float | None = _number(cost, "X-Cost-Target-USD", positive=False)
    elif ext.get("cost_target_usd") is not None:
        cost_usd = _number(ext["cost_target_usd"], "orchestrator.cost_target_usd", positive=False)
    else:
        cost_usd = None
    if slo is not None:
        slo_ms: float | None = _number(slo, "X-Latency-SLO-Ms", positive=True)
    elif ext.get("latency_slo_ms") is not None:
        slo_ms = _number(ext["latency_slo_ms"], "orchestrator.latency_slo_ms", positive=True)
    else:
        slo_ms = None
    return CallerTargets(cost_target_usd=cost_usd, latency_slo_ms=slo_ms)
