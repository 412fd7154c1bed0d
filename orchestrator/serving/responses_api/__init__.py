"""OpenAI's Responses API (`POST /v1/responses`) served through the chat path.

Ray Serve LLM 2.60 does not serve Responses, and vLLM's own `OpenAIServingResponses` keeps its
conversation store inside one engine replica, which a router that picks a profile per request
cannot follow. So the ingress translates: a Responses request becomes a chat request (then
predicted, priced, decided, served and settled exactly like chat), and the chat answer (whole
or streamed) becomes a Response. Pure: no Ray, no HTTP, no clock except `created_at`.

Invariants:
- the request model forbids unknown fields: a Responses feature this translation does not
  carry (built-in tools, `include`, background mode, ...) is a 400 naming it, never ignored;
- `previous_response_id` continues a stored conversation (its messages, its answer, then the
  new input; `instructions` are not carried over, as in OpenAI's API); an id this server did
  not store, or stored for another tenant, is a 400 naming `previous_response_id`;
- usage is the chat usage renamed (input/output tokens; reasoning tokens are output tokens)
  with the same `cost_usd`.

Split by job: `protocol.py` (wire models), `translate.py` (to chat and back, `Exchange`),
`store.py` (conversations), `stream.py` (the SSE state machine).
"""

from orchestrator.serving.responses_api.protocol import (
    ResponseObject,
    ResponsesRequest,
    parse_request,
)
from orchestrator.serving.responses_api.store import ResponseStore, StoredResponse, not_stored
from orchestrator.serving.responses_api.stream import ResponseStreamer, sse
from orchestrator.serving.responses_api.translate import Exchange, chat_body, input_messages

__all__ = [
    "Exchange",
    "ResponseObject",
    "ResponseStore",
    "ResponseStreamer",
    "ResponsesRequest",
    "StoredResponse",
    "chat_body",
    "input_messages",
    "not_stored",
    "parse_request",
    "sse",
]
