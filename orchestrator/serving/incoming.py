"""A request body parsed once into the one typed value every later stage reads.

`parse_incoming` does all the reading and checking of a body: our clearer field checks, vLLM's
own request model (validated exactly once here; later stages only `model_copy` it), and the
predictor's text view (turns, last user text, n, reasoning wishes). The predictor (`text`),
the router inputs (`body`, via the pure `route_inputs.route_request`, which the simulator also
calls) and the engine call (`engine_request`) all read the resulting `IncomingRequest`; none
decodes or validates the body again.

Invariants: an `IncomingRequest` exists only for a body that passed every check (a failure is
an `OrchestratorHTTPError` 400 naming the field); it is never mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.catalog.schema import Catalog
from orchestrator.policy import TenantPolicy
from orchestrator.predict.request import ParsedRequest, PredictorInputError, parse_request
from orchestrator.serving import bounds, client_fields, openai_io
from orchestrator.serving.errors import OrchestratorHTTPError
from orchestrator.serving.profile_selection import candidates_for_model
from orchestrator.serving.route_inputs import CallerTargets


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """One client request, read once (see the module docstring)."""

    endpoint: openai_io.Endpoint
    tenant: TenantPolicy
    body: Mapping[str, Any]  # the client's JSON body without the `orchestrator` object
    engine_request: Any  # vLLM's ChatCompletionRequest / CompletionRequest, validated once
    targets: CallerTargets  # caller's cost target and latency SLO (headers or body)
    text: ParsedRequest  # the predictor's view: turns, last user text, n, reasoning wishes

    @property
    def model(self) -> str | None:
        """The `model` the client asked for (family, profile, `auto`; None = not given)."""
        return self.body.get("model")

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def wants_usage(self) -> bool:
        return openai_io.client_wants_stream_usage(self.body)

    @property
    def wants_continuous_usage(self) -> bool:
        return openai_io.client_wants_continuous_usage(self.body)

    @property
    def last_user_text(self) -> str:
        return self.text.last_user_text

    @property
    def n(self) -> int:
        """Choices per prompt times prompts (what the predictor's totals cover)."""
        return self.text.n


def parse_incoming(
    body: dict[str, Any],
    endpoint: openai_io.Endpoint,
    tenant: TenantPolicy,
    targets: CallerTargets,
    catalog: Catalog,
) -> IncomingRequest:
    """Check and read a decoded JSON body (the `orchestrator` object already taken out):
    our field checks, the tenant's per-request bounds, the `model` (404 when unknown), then
    vLLM's request model. An empty completions prompt becomes the first candidate profile's
    start-of-document token (vLLM refuses an empty prompt)."""
    openai_io.check_common_fields(body, endpoint)  # clearer messages for the common cases
    bounds.check_body_bounds(body, tenant.bounds)  # the policy's per-request bounds
    candidates = candidates_for_model(body.get("model"), catalog)
    if endpoint == "completions" and client_fields.empty_prompt(body.get("prompt")):
        body["prompt"] = client_fields.document_start_ids(candidates[0])
    engine_request = openai_io.validate_request(body, endpoint)  # vLLM's model: every field
    try:
        text = parse_request(body)
    except PredictorInputError as exc:
        raise OrchestratorHTTPError(400, str(exc)) from None
    return IncomingRequest(
        endpoint=endpoint,
        tenant=tenant,
        body=body,
        engine_request=engine_request,
        targets=targets,
        text=text,
    )
