"""Request parsing, field checks and profile choice (pure parts of the ingress)."""

from __future__ import annotations

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.request.candidates import candidates_for_model
from orchestrator.request.spec import read_spec
from orchestrator.serving import openai_io
from orchestrator.serving.errors import OrchestratorHTTPError, error_body, param_from_loc

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
    def checked(body: dict) -> None:  # as `parse_incoming` reads a body
        openai_io.check_common_fields(body, "chat")
        read_spec(body, "chat")

    err = _status(checked, body)
    assert err.status == 400 and err.param == param and isinstance(err.code, str)


def test_completion_needs_prompt():
    assert _status(openai_io.check_common_fields, {"model": "m"}, "completions").param == "prompt"
    openai_io.check_common_fields({"prompt": "hi", "max_tokens": 3}, "completions")


def test_vllm_validation_error_names_field():
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}
    err = _status(openai_io.validate_request, body, "chat")
    assert err.status == 400 and err.param == "temperature"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"stream_options": {"include_usage": True}}, "stream_options"),  # without stream
        ({"top_logprobs": 3}, "top_logprobs"),  # without logprobs
    ],
)
def test_vllm_own_validation_errors_are_400_naming_field(body, param):
    """vLLM raises VLLMValidationError (not a ValueError) from its validators."""
    full = {"model": "m", "messages": [{"role": "user", "content": "x"}], **body}
    err = _status(openai_io.validate_request, full, "chat")
    assert err.status == 400 and err.param == param and param in err.message


def test_valid_chat_request_validates():
    req = openai_io.validate_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}, "chat"
    )
    assert req.model == "m"


def test_sse_json_reads_data_events_and_sse_event_writes_them():
    event = 'data: {"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}\n\n'
    data = openai_io.sse_json(event)
    assert data == {"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}
    for other in ("data: [DONE]\n\n", ": keep-alive\n\n", "data: {not json\n\n", "data: [1]\n\n"):
        assert openai_io.sse_json(other) is None
    data["usage"]["cost_usd"] = 0.0012
    data["note"] = "café"
    written = openai_io.sse_event(data)
    assert written.startswith("data: {") and written.endswith("}\n\n")
    assert '"cost_usd":0.0012' in written and "café" in written
    assert openai_io.sse_json(written) == data


def test_engine_stream_options_force_usage_and_keep_the_clients_own():
    assert openai_io.engine_stream_options(None) == {
        "include_usage": True,
        "continuous_usage_stats": True,
    }
    forced = openai_io.engine_stream_options({"include_usage": False, "other": 1})
    assert forced == {"include_usage": True, "continuous_usage_stats": True, "other": 1}
    asked = {"stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    assert read_spec(asked, "chat").wants_continuous_usage
    # vLLM gives per-chunk usage only together with include_usage
    alone = {"stream_options": {"continuous_usage_stats": True}}
    assert not read_spec(alone, "chat").wants_continuous_usage
    assert not read_spec({"stream_options": "yes"}, "chat").wants_continuous_usage
    # a stream counted by its token ids: the final usage only (the client's own wish kept)
    assert openai_io.engine_stream_options(None, per_chunk_usage=False) == {"include_usage": True}
    kept = openai_io.engine_stream_options(asked["stream_options"], per_chunk_usage=False)
    assert kept == {"include_usage": True, "continuous_usage_stats": True}


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
        "error": {
            "message": "nope",
            "type": "not_found_error",
            "param": "model",
            "code": "not_found",
        }
    }
    assert param_from_loc(("body", "messages", 0, "content")) == "messages[0].content"
