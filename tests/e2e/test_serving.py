"""End to end through the official openai client: real Ray Serve, real vLLM CPU engines."""

from __future__ import annotations

import concurrent.futures as cf
import time

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def test_chat_completion_gives_sensible_text(client, family):
    resp = client.chat.completions.create(
        model=family, messages=QUESTION, max_tokens=40, temperature=0
    )
    text = resp.choices[0].message.content
    assert "paris" in text.lower(), text
    assert resp.usage.completion_tokens > 0
    assert resp.usage.prompt_tokens > 5
    assert resp.model == family


def test_stream_deltas_join_to_full_text_and_last_chunk_has_usage(client, family):
    stream = client.chat.completions.create(
        model=family,
        messages=QUESTION,
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    # greedy decoding: the stream says exactly what the non-streamed answer says
    plain = client.chat.completions.create(
        model=family, messages=QUESTION, max_tokens=40, temperature=0
    )
    assert text == plain.choices[0].message.content


def test_stream_without_usage_request_has_no_usage_chunk(client, family):
    chunks = list(
        client.chat.completions.create(
            model=family, messages=QUESTION, max_tokens=8, temperature=0, stream=True
        )
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_text_completion(client, family):
    resp = client.completions.create(
        model=family, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert resp.choices[0].text.strip()
    assert resp.usage.completion_tokens > 0


def test_model_list_names_auto_family_and_profiles(client, family):
    ids = {m.id for m in client.models.list().data}
    assert {"auto", family, "smollm2-cpu", "smollm2-cpu-ngram"} <= ids


def test_pinned_profile_and_auto_are_served(client, server):
    for model in ("smollm2-cpu-ngram", "auto"):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=QUESTION, max_tokens=5, temperature=0
        )
        assert raw.headers["x-request-id"]
        if model != "auto":
            assert raw.headers["x-orchestrator-profile"] == model
        assert raw.parse().choices[0].message.content


def test_eight_concurrent_requests_all_succeed(client, family):
    prompts = [f"Write one sentence about the number {i}." for i in range(8)]

    def ask(p: str) -> str:
        r = client.chat.completions.create(
            model=family, messages=[{"role": "user", "content": p}], max_tokens=24, temperature=0
        )
        return r.choices[0].message.content

    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, prompts))
    assert len(answers) == 8 and all(a.strip() for a in answers)


# ----- invalid requests: right 4xx, OpenAI error JSON, and the server keeps serving ----------


def _assert_openai_error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


def test_no_messages_is_400(server, family):
    r = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": family, "messages": []})
    assert _assert_openai_error(r, 400)["param"] == "messages"


def test_missing_messages_is_400(server, family):
    r = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": family})
    assert _assert_openai_error(r, 400)["param"] == "messages"


def test_negative_max_tokens_is_400(client, family):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=family, messages=QUESTION, max_tokens=-5)
    assert err.value.status_code == 400
    assert "max_tokens" in str(err.value)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-9-ultra", messages=QUESTION, max_tokens=5)
    assert "gpt-9-ultra" in str(err.value)


def test_malformed_json_is_400(server):
    r = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        content=b'{"model": "auto", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert "JSON" in _assert_openai_error(r, 400)["message"]


def test_wrong_field_type_is_400_naming_field(server, family):
    r = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": family, "messages": QUESTION, "temperature": "hot"},
    )
    assert "temperature" in _assert_openai_error(r, 400)["param"]


def test_prompt_longer_than_max_model_len_is_400(client, family):
    long_prompt = "hello " * 3000  # > 2048 tokens of context
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=family, messages=[{"role": "user", "content": long_prompt}], max_tokens=5
        )
    assert err.value.status_code == 400


def test_server_still_serves_after_bad_requests(client, family):
    resp = client.chat.completions.create(
        model=family, messages=QUESTION, max_tokens=5, temperature=0
    )
    assert resp.choices[0].message.content


def test_every_response_carries_exactly_one_request_id(server, family):
    """Serve's proxy sets X-Request-Id (and appends it to whatever the app sends): the ingress
    must not set its own, on answers, streams and errors alike."""
    url = f"{server.base_url}/v1/chat/completions"
    body = {"model": family, "messages": QUESTION, "max_tokens": 4}
    answer = httpx.post(url, json=body, timeout=120)
    error = httpx.post(url, json={"model": family, "messages": 5}, timeout=30)
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=120) as stream:
        stream.read()
    assert (answer.status_code, error.status_code, stream.status_code) == (200, 400, 200)
    for r in (answer, error, stream):
        assert len(r.headers.get_list("x-request-id")) == 1, r.headers.raw
    rid = f"e2e-own-{time.time_ns()}"
    own = httpx.post(url, json=body, headers={"X-Request-Id": rid}, timeout=120)
    assert own.headers.get_list("x-request-id") == [rid]


def test_healthz_reports_every_profile_ready(server):
    r = httpx.get(f"{server.base_url}/healthz")
    assert r.status_code == 200
    assert r.json()["profiles"] == {"smollm2-cpu": True, "smollm2-cpu-ngram": True}
