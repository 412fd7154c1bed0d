"""A batch line through the request executor: run as its job's tenant, charged at the
tenant's price factor, never streamed, refused like any request."""

from __future__ import annotations

import json

import pytest

from tests.serving.conftest import FAMILY, MESSAGES, serve_body


async def _pair(ingress, chat_completion):
    """The same request as a client's and as a batch line at price factor 0.25."""
    ingress.handle.streams.append(chat_completion())
    client = await serve_body(ingress, {"model": FAMILY, "messages": MESSAGES}, "chat",
                              {"x-request-id": "client-1"})  # fmt: skip
    ingress.handle.streams.append(chat_completion())
    line = await ingress.serve_line("default", {"model": FAMILY, "messages": MESSAGES,
                                    "stream": True}, "chat", "batch_x-L1", price_factor=0.25)  # fmt: skip
    return client, line


async def test_a_line_is_charged_at_its_price_factor_under_its_request_id(ingress, chat_completion):
    client, line = await _pair(ingress, chat_completion)
    assert client.status_code == line.status_code == 200
    client_sent, line_sent = ingress.handle.requests[-2:]
    assert line_sent.stream is False  # a line never streams
    assert line_sent.priority > client_sent.priority  # and waits after interactive requests
    full, cheap = ingress.ledger.get("client-1"), ingress.ledger.get("batch_x-L1")
    assert cheap is not None and cheap.tenant == "default"
    assert cheap.cost_usd == pytest.approx(0.25 * full.cost_usd)
    assert json.loads(line.body)["usage"]["cost_usd"] == pytest.approx(cheap.cost_usd, rel=1e-3)


async def test_a_refused_line_is_an_error_response_not_an_exception(ingress):
    line = await ingress.serve_line("default", {"model": "no-such-model", "messages": MESSAGES},
                                    "chat", "batch_x-L2")  # fmt: skip
    assert line.status_code == 404
    assert json.loads(line.body)["error"]["code"] == "model_not_found"
    gone = await ingress.serve_line("removed-tenant", {"model": FAMILY, "messages": MESSAGES},
                                    "chat", "batch_x-L3")  # fmt: skip
    assert gone.status_code == 401
