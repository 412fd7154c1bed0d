"""The ingress under bad input, a failing engine and overload (issue 15), without Ray.

Uses the request executor of `test_ingress_request_path` (real policy, router, ledger,
metrics; fake predictor and engines) and, for the property test, the real predictor."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.predict import Predictor
from orchestrator.serving.errors import OrchestratorHTTPError
from tests.serving.conftest import (
    FAMILY,
    LOCAL,
    MESSAGES,
    POLICY_TEXT,
    FakeHandle,
    blue_completion,
    error_of,
    occupy,
    use_policy,
)
from tests.serving.conftest import serve_body as _serve


def _completion(engine_stream) -> Any:
    return engine_stream([blue_completion()])


# ------------------------------------------------------------------ client field names


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "string"),
        (
            {"messages": [{"role": "developer", "content": {"a": 1}}]},
            "messages[0].content",
            "array",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages[0].content[0].text",
            "string",
        ),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "user"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "required"),
        ({"messages": MESSAGES, "tools": [{"type": "function"}]}, "tools[0].function", "required"),
    ],
)
async def test_errors_name_the_field_as_sent_never_internal_types(ingress, body, param, words):
    with pytest.raises(OrchestratorHTTPError) as err:
        await _serve(ingress, {"model": FAMILY, **body}, "chat")
    assert err.value.status == 400 and err.value.param == param
    assert words in err.value.message
    assert "Param" not in err.value.message and "str]" not in err.value.message


async def test_empty_prompt_is_answered_from_the_start_of_document_token(ingress, engine_stream):
    ingress.handle.streams.append(_completion(engine_stream))
    response = await _serve(ingress, {"model": FAMILY, "prompt": ""}, "completions")
    assert response.status_code == 200
    sent = ingress.handle.requests[0].prompt
    assert sent == [0]  # SmolLM2's <|endoftext|>


# ------------------------------------------------------------------ request bounds

BOUNDED = POLICY_TEXT + "  requests: {max_n: 2, max_output_tokens: 100, max_prompt_tokens: 8}\n"


@pytest.mark.parametrize(
    ("extra", "param", "bound"),
    [
        ({"n": 3}, "n", "max_n"),
        ({"n": 2, "max_tokens": 60}, "max_tokens", "max_output_tokens"),
        ({"best_of": 9}, "best_of", "max_best_of"),
    ],
)
async def test_over_a_bound_is_400_naming_it_before_anything_runs(ingress, extra, param, bound):
    use_policy(ingress, BOUNDED)
    response = await _serve(ingress, {"model": FAMILY, "messages": MESSAGES, **extra}, "chat")
    error = error_of(response)
    assert response.status_code == 400 and error["param"] == param
    assert f"requests.{bound}" in error["message"] and error["code"] == f"over_{bound}"
    assert ingress.handle.requests == [] and ingress.ledger.count() == 0


async def test_prompt_over_max_prompt_tokens_is_400(ingress):
    use_policy(ingress, BOUNDED)  # the fake predictor counts 11 prompt tokens
    response = await _serve(ingress, {"model": FAMILY, "messages": MESSAGES}, "chat")
    error = error_of(response)
    assert response.status_code == 400 and "requests.max_prompt_tokens" in error["message"]
    assert error["param"] == "messages" and ingress.handle.requests == []


async def test_tenant_over_max_concurrent_requests_is_429_with_retry_after(ingress):
    use_policy(ingress, POLICY_TEXT + "  requests: {max_concurrent_requests: 2}\n")
    occupy(ingress, "elsewhere", 2, tenant="default")
    response = await _serve(ingress, {"model": FAMILY, "messages": MESSAGES}, "chat")
    assert response.status_code == 429 and response.headers["Retry-After"]
    assert "requests.max_concurrent_requests" in error_of(response)["message"]


# ------------------------------------------------------------------ engine failure


class FailingStream:
    def __init__(self, exc: BaseException):
        self.exc = exc

    async def __anext__(self) -> Any:
        raise self.exc

    def cancel(self) -> None:
        pass


async def test_engine_death_before_first_byte_marks_down_and_retries_elsewhere(
    ingress, engine_stream
):
    handles = {p.name: FakeHandle([]) for p in LOCAL.profiles}
    ingress.handles = lambda name: handles[name]
    calls: list[str] = []

    def engine(name: str):
        def remote(request: Any, raw: Any) -> Any:
            calls.append(name)
            handles[name].requests.append(request)
            if len(calls) == 1:  # whichever profile is chosen first dies before any output
                return FailingStream(RuntimeError("EngineDeadError"))
            return _completion(engine_stream)

        return SimpleNamespace(remote=remote)

    for name, h in handles.items():
        h.chat = engine(name)
    body = {"model": FAMILY, "messages": MESSAGES}
    response = await _serve(ingress, body, "chat", {"x-request-id": "rid-1"})
    assert isinstance(response, JSONResponse) and response.status_code == 200
    served = response.headers["x-orchestrator-profile"]
    first_choice = calls[0]
    assert served != first_choice and calls == [first_choice, served]
    assert response.headers["x-orchestrator-retried-from"] == first_choice
    assert ingress.health.is_down(first_choice)
    assert not ingress.profile_ready(first_choice) and first_choice in ingress.health.down()
    row = ingress.ledger.get("rid-1")
    assert row.status == "ok" and row.profile == served
    assert ingress.load.idle()

    # the next request goes straight to the healthy profile
    again = await _serve(ingress, body, "chat")
    assert again.headers["x-orchestrator-profile"] == served


async def test_policy_may_forbid_the_retry(ingress):
    use_policy(ingress, POLICY_TEXT + "  failover: {retry: false}\n")
    ingress.handle.streams.append(FailingStream(RuntimeError("EngineDeadError")))
    with pytest.raises(OrchestratorHTTPError) as err:
        await _serve(ingress, {"model": FAMILY, "messages": MESSAGES}, "chat")
    assert err.value.status == 503 and err.value.headers["Retry-After"]
    assert len(ingress.handle.requests) == 1


# ------------------------------------------------------------------ overload


async def test_saturated_replicas_shed_with_429_and_retry_after(ingress, engine_stream):
    for p in LOCAL.profiles:  # 8 slots each, half again may queue: 24 in flight is full
        occupy(ingress, p.name, 12)
    response = await _serve(ingress, {"model": FAMILY, "messages": MESSAGES}, "chat")
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    assert error_of(response)["code"] == "server_overloaded"
    ingress.load.end(f"load-{LOCAL.profiles[0].name}-11")  # one slot left in the queue
    ingress.handle.streams.append(_completion(engine_stream))
    response = await _serve(ingress, {"model": FAMILY, "messages": MESSAGES}, "chat")
    assert response.status_code == 200


# ------------------------------------------------------------------ property test

ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
CONTENT = ANY_TEXT | st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": ANY_TEXT}), max_size=2
)


@pytest.fixture(scope="module")
def real_predictor():
    return Predictor.default()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    system=ANY_TEXT,
    content=CONTENT,
    prompt=ANY_TEXT,
    chat=st.booleans(),
)
async def test_any_text_is_parsed_and_planned_never_a_500(
    ingress, real_predictor, engine_stream, system, content, prompt, chat
):
    ingress.predictor = real_predictor
    ingress.handle.streams[:] = [_completion(engine_stream)]
    if chat:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": content}]
        body, endpoint = {"model": FAMILY, "messages": messages, "max_tokens": 4}, "chat"
    else:
        body, endpoint = {"model": FAMILY, "prompt": prompt, "max_tokens": 4}, "completions"
    raw = json.dumps(body).encode()  # lone surrogates travel as \\udxxx escapes, as in JSON
    try:
        response = await _serve(ingress, raw, endpoint)
    except OrchestratorHTTPError as exc:
        assert 400 <= exc.status < 500, exc.message
        return
    assert response.status_code < 500
