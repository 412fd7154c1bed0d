"""A request body read once into the one typed value every later stage reads.

`parse_incoming` does all the reading and checking of a body: the request spec
(`orchestrator.request.spec`: max_tokens, n, the reasoning wish, tools, stream and usage
wishes, caller targets), our clearer field checks, vLLM's own request model (validated
exactly once here; later stages only `model_copy` it) and the predictor's text view. The
predictor (`text`), the request core (`spec`) and the engine call (`engine_request`) all read
the resulting `IncomingRequest`; none decodes or reads the body's fields again.

Invariants: an `IncomingRequest` exists only for a body that passed every check (a failure is
a `RequestError` 400 naming the field in `param`); it is never mutated. The tenant's policy
bounds are admission's (`request/plan.py`), checked after prediction and recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.catalog.schema import Catalog
from orchestrator.policy import TenantPolicy
from orchestrator.predict.request import ParsedRequest, PredictorInputError, parse_request
from orchestrator.request.candidates import candidates_for_model
from orchestrator.request.errors import RequestError
from orchestrator.request.spec import CallerTargets, RequestSpec, read_spec
from orchestrator.serving import client_fields, openai_io


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """One client request, read once (see the module docstring)."""

    tenant: TenantPolicy
    spec: RequestSpec  # what the client asked for, read once
    body: Mapping[str, Any]  # the client's JSON body without the `orchestrator` object
    engine_request: Any  # vLLM's ChatCompletionRequest / CompletionRequest, validated once
    text: ParsedRequest  # the predictor's view: turns, last user text, n, reasoning wishes

    @property
    def endpoint(self) -> openai_io.Endpoint:
        return self.spec.endpoint

    @property
    def model(self) -> str | None:
        """The `model` the client asked for (family, profile, `auto`; None = not given)."""
        return self.spec.model

    @property
    def stream(self) -> bool:
        return self.spec.stream

    @property
    def targets(self) -> CallerTargets:
        return self.spec.targets

    @property
    def last_user_text(self) -> str:
        return self.text.last_user_text

    @property
    def n(self) -> int:
        """Choices per prompt times prompts (what the predictor's totals cover)."""
        return self.text.n

    @property
    def text_chars(self) -> int:
        """Characters the predictor reads: every turn's text and the tools' description."""
        return sum(len(turn.text) for turn in self.text.turns) + len(self.text.tools_text)


def parse_incoming(
    body: dict[str, Any],
    endpoint: openai_io.Endpoint,
    tenant: TenantPolicy,
    targets: CallerTargets,
    catalog: Catalog,
) -> IncomingRequest:
    """Check and read a decoded JSON body (the `orchestrator` object already taken out): the
    spec, our field checks, the `model` (404 when unknown), then vLLM's request model. An
    empty completions prompt becomes the first candidate profile's start-of-document token
    (vLLM refuses an empty prompt)."""
    openai_io.check_common_fields(body, endpoint)  # clearer messages for the common cases
    spec = read_spec(body, endpoint, targets)
    candidates = candidates_for_model(spec.model, catalog)
    if endpoint == "completions" and client_fields.empty_prompt(body.get("prompt")):
        body["prompt"] = client_fields.document_start_ids(candidates[0])
    engine_request = openai_io.validate_request(body, endpoint)  # vLLM's model: every field
    try:
        text = parse_request(body, spec.wishes)
    except PredictorInputError as exc:
        raise RequestError(400, str(exc), param=exc.param) from None
    return IncomingRequest(
        tenant=tenant, spec=spec, body=body, engine_request=engine_request, text=text
    )
