"""The ingress's OpenAPI document: every route typed, errors in OpenAI's shape, right media
types; 405 carries Allow. Built from the real ingress app (no Ray started)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from orchestrator.serving import api_docs, api_operations


@pytest.fixture(scope="module")
def ingress_app():
    from orchestrator.serving.ingress import fastapi_app

    return fastapi_app


@pytest.fixture(scope="module")
def doc(ingress_app):
    return ingress_app.openapi()


def _routes(app) -> set[tuple[str, str]]:
    out = set()
    for route in app.routes:
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                out.add((method, route.path))
    return out


def test_every_route_the_app_answers_is_documented(ingress_app, doc):
    from orchestrator.serving.ingress import create_fastapi_app

    strict = api_docs.build_openapi(
        "t", "1", ingress_app.routes, api_operations.operations(), strict=True
    )  # raises on a route without an Operation in api_docs
    assert strict["paths"].keys() == doc["paths"].keys()
    assert create_fastapi_app().docs_url is None
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert _routes(ingress_app) <= documented
    for path in ("/health", "/healthz", "/version", "/metrics", "/v1/responses"):
        assert path in doc["paths"]
    assert "/docs" not in doc["paths"] and ("GET", "/docs") not in _routes(ingress_app)


def test_undescribed_route_fails_the_build():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/secret")
    def secret():
        return {}

    with pytest.raises(KeyError, match="/secret"):
        api_docs.build_openapi("t", "1", app.routes, {})
    served = api_docs.build_openapi("t", "1", app.routes, {}, strict=False)
    assert "/secret" in served["paths"]  # the served document never hides or fails on it


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/chat/completions", "ChatCompletionRequest"),
        ("/v1/completions", "CompletionRequest"),
        ("/v1/responses", "ResponsesRequest"),
    ],
)
def test_routed_posts_have_typed_bodies_errors_and_media_types(doc, path, model):
    op = doc["paths"][path]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/" + model)
    schema = doc["components"]["schemas"][model]
    assert "orchestrator" in schema["properties"]
    assert set(op["responses"]) >= {"200", "400", "401", "402", "404", "429", "503"}
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    for status in ("400", "401", "402", "404", "429", "503"):
        err = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert err.endswith("/ErrorResponse")
    assert "Retry-After" in op["responses"]["429"]["headers"]
    assert "X-Orchestrator-Profile" in op["responses"]["200"]["headers"]
    names = {p["name"] for p in op["parameters"]}
    assert names == {"X-Cost-Target-USD", "X-Latency-SLO-Ms"}


def test_chat_request_schema_is_vllms_own(doc):
    props = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert {"messages", "tools", "tool_choice", "stream_options", "max_tokens"} <= set(props)
    assert "messages" in doc["components"]["schemas"]["ChatCompletionRequest"]["required"]


def test_metrics_is_text_and_health_503_is_its_status_body(doc):
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert api_operations.PROMETHEUS_TEXT in metrics and "application/json" not in metrics
    health = doc["paths"]["/health"]["get"]["responses"]
    assert health["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/HealthStatus")
    decision = doc["paths"]["/v1/orchestrator/decisions/{request_id}"]["get"]
    assert [p["name"] for p in decision["parameters"]] == ["request_id"]


def test_every_ref_resolves(doc):
    import json
    import re

    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"])


def test_document_is_valid_openapi(doc):
    from openapi_spec_validator import validate

    validate(doc)


def test_405_names_the_allowed_methods_in_openai_error_json():
    from orchestrator.serving.ingress import create_fastapi_app

    app = create_fastapi_app()

    @app.post("/v1/thing")
    async def thing():
        return {}

    r = TestClient(app).request("TRACE", "/v1/thing")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_request_schemas_carry_our_own_checks(doc):
    chat = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert chat["messages"]["minItems"] == 1
    ints = [b for b in chat["max_tokens"]["anyOf"] if b.get("type") == "integer"]
    assert ints and ints[0]["minimum"] == 1


def test_405_names_every_method_of_a_path_with_one_route_per_method():
    """`/v1/batches` takes GET and POST as two routes: `Allow` names both (schemathesis
    checks `Allow` against the document)."""
    from orchestrator.serving.ingress import create_fastapi_app

    app = create_fastapi_app()

    @app.get("/v1/things")
    async def list_things():
        return {}

    @app.post("/v1/things")
    async def make_thing():
        return {}

    r = TestClient(app).request("OPTIONS", "/v1/things")
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == {"GET", "POST"}
