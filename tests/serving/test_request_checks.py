"""Request parsing, field checks and profile choice (pure parts of the ingress)."""

from __future__ import annotations

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.serving import openai_io
from orchestrator.serving.errors import OrchestratorHTTPError, error_body, param_from_loc
from orchestrator.serving.profile_selection import candidates_for_model

LOCAL = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")
GPU = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")


def _status(fn, *args) -> OrchestratorHTTPError:
    with pytest.raises(OrchestratorHTTPError) as err:
        fn(*args)
    return err.value


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_bad_bodies_are_400(raw):
    assert _status(openai_io.parse_json_body, raw).status == 400


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "10"}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": True}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "model": 3}, "model"),
    ],
)
def test_chat_field_checks_name_the_field(body, param):
    err = _status(openai_io.check_common_fields, body, "chat")
    assert err.status == 400 and err.param == param


def test_completion_needs_prompt():
    assert _status(openai_io.check_common_fields, {"model": "m"}, "completions").param == "prompt"
    openai_io.check_common_fields({"prompt": "hi", "max_tokens": 3}, "completions")


def test_vllm_validation_error_names_field():
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}
    err = _status(openai_io.validate_request, body, "chat")
    assert err.status == 400 and err.param == "temperature"


def test_valid_chat_request_validates():
    req = openai_io.validate_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}, "chat"
    )
    assert req.model == "m"


def test_stream_usage_rewrite_adds_cost():
    event = 'data: {"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}\n\n'
    assert openai_io.usage_from_sse(event) == {"prompt_tokens": 3, "completion_tokens": 5}
    assert openai_io.usage_from_sse('data: {"id":"x","choices":[{}],"usage":null}\n\n') is None
    rewritten = openai_io.add_cost_to_sse(event, 0.0012)
    assert '"cost_usd":0.0012' in rewritten and rewritten.endswith("\n\n")


def test_split_sse_batches():
    assert openai_io.split_sse("data: a\n\ndata: b\n\n") == ["data: a\n\n", "data: b\n\n"]


def test_candidates_by_family_profile_and_auto():
    fam = candidates_for_model("smollm2-135m-instruct", LOCAL)
    assert [p.name for p in fam] == ["smollm2-cpu", "smollm2-cpu-ngram"]
    assert [p.name for p in candidates_for_model("smollm2-cpu-ngram", LOCAL)] == [
        "smollm2-cpu-ngram"
    ]
    assert len(candidates_for_model("auto", GPU)) == len(GPU.profiles)
    assert len(candidates_for_model(None, GPU)) == len(GPU.profiles)
    assert {p.name for p in candidates_for_model("llama-3.1-8b-instruct", GPU)} == {
        "llama8b-bf16-eagle3",
        "llama8b-fp8-ngram",
    }


def test_unknown_model_is_404_listing_models():
    err = _status(candidates_for_model, "gpt-9", LOCAL)
    assert err.status == 404 and err.code == "model_not_found"
    assert "smollm2-135m-instruct" in err.message


def test_error_body_shape_and_param_from_loc():
    body = error_body(404, "nope", "model")
    assert body == {
        "error": {"message": "nope", "type": "not_found_error", "param": "model", "code": 404}
    }
    assert param_from_loc(("body", "messages", 0, "content")) == "messages[0].content"
