"""The Files and Batches endpoints' logic: tenancy, validation naming fields, OpenAI shapes."""

from __future__ import annotations

import json

import pytest

from orchestrator.batch.store import BatchStore
from orchestrator.catalog.loader import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy.loader import load_policy_text
from orchestrator.serving.batch_api import BatchApi
from orchestrator.serving.errors import OrchestratorHTTPError
from orchestrator.storage import open_database

CATALOG = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")
POLICY = """\
apiVersion: orchestrator/v1
kind: Policy
tenants:
  - name: acme
    api_keys: [{env: ACME_KEY}]
    batch: {max_completion_window: 2h, price_factor: 0.25}
  - name: other
    api_keys: [{env: OTHER_KEY}]
"""
KEYS = {"ACME_KEY": "k-acme", "OTHER_KEY": "k-other"}
ACME = {"authorization": "Bearer k-acme"}
OTHER = {"authorization": "Bearer k-other"}
CHAT = "/v1/chat/completions"


async def _inline(fn, *args, **kwargs):
    return fn(*args, **kwargs)


@pytest.fixture
def api(tmp_path):
    policy = load_policy_text(POLICY, "policy.yaml", CATALOG, env=KEYS)

    def authenticate(headers):
        tenant = policy.resolve_tenant(headers.get("authorization", "").removeprefix("Bearer "))
        if tenant is None:
            raise OrchestratorHTTPError(401, "unknown key", code="invalid_api_key")
        return tenant

    with open_database(tmp_path / "b.sqlite3") as db:
        yield BatchApi(BatchStore(db), CATALOG, authenticate, offload=_inline,
                       clock=lambda: 1_700_000_000.0)  # fmt: skip


def _jsonl(*bodies: dict) -> bytes:
    return "\n".join(
        json.dumps({"custom_id": f"c{i}", "method": "POST", "url": CHAT, "body": b})
        for i, b in enumerate(bodies)
    ).encode()


async def _upload(api, headers=ACME, content=None) -> str:
    content = content or _jsonl({"model": "smollm2-135m-instruct", "messages": []})
    return (await api.upload(headers, "batch", "in.jsonl", content))["id"]


async def test_upload_then_create_returns_openai_shapes(api):
    file_id = await _upload(api)
    assert (await api.file(ACME, file_id))["purpose"] == "batch"
    job = await api.create(ACME, {"input_file_id": file_id, "endpoint": CHAT,
                                  "completion_window": "1h", "metadata": {"k": "v"}})  # fmt: skip
    assert job["object"] == "batch" and job["status"] == "in_progress"
    assert job["request_counts"] == {"total": 1, "completed": 0, "failed": 0}
    assert job["expires_at"] - job["created_at"] == 3600
    assert (await api.get(ACME, job["id"]))["metadata"] == {"k": "v"}
    listed = await api.list(ACME, None, 20)
    assert [b["id"] for b in listed["data"]] == [job["id"]] and not listed["has_more"]


async def test_another_tenants_file_and_job_are_not_found(api):
    file_id = await _upload(api)
    job = await api.create(ACME, {"input_file_id": file_id, "endpoint": CHAT,
                                  "completion_window": "1h"})  # fmt: skip
    for call in (api.file(OTHER, file_id), api.get(OTHER, job["id"]),
                 api.create(OTHER, {"input_file_id": file_id, "endpoint": CHAT,
                                    "completion_window": "1h"})):  # fmt: skip
        with pytest.raises(OrchestratorHTTPError) as err:
            await call
        assert err.value.status == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"endpoint": CHAT, "completion_window": "1h"}, "input_file_id"),
        ({"input_file_id": "x", "endpoint": "/v1/embeddings", "completion_window": "1h"},
         "endpoint"),
        ({"input_file_id": "x", "endpoint": CHAT, "completion_window": "soon"},
         "completion_window"),
        ({"input_file_id": "x", "endpoint": CHAT, "completion_window": "3h"},
         "completion_window"),  # over the tenant's batch.max_completion_window (2h)
    ],
)  # fmt: skip
async def test_a_bad_create_is_a_400_naming_the_field(api, body, param):
    with pytest.raises(OrchestratorHTTPError) as err:
        await api.create(ACME, body)
    assert err.value.status == 400 and err.value.param == param
    assert isinstance(err.value.code, str)


async def test_a_line_naming_an_unknown_model_fails_the_create(api):
    file_id = await _upload(api, content=_jsonl({"model": "gpt-17", "messages": []}))
    with pytest.raises(OrchestratorHTTPError) as err:
        await api.create(ACME, {"input_file_id": file_id, "endpoint": CHAT,
                                "completion_window": "1h"})  # fmt: skip
    assert err.value.status == 400 and "line 1" in err.value.message
    assert err.value.code == "model_not_found"


async def test_a_malformed_line_does_not_fail_the_job(api):
    content = _jsonl({"model": "smollm2-135m-instruct", "messages": []}) + b"\n{oops\n"
    file_id = await _upload(api, content=content)
    job = await api.create(ACME, {"input_file_id": file_id, "endpoint": CHAT,
                                  "completion_window": "1h"})  # fmt: skip
    assert job["request_counts"] == {"total": 2, "completed": 0, "failed": 1}


async def test_upload_needs_purpose_batch_and_content(api):
    with pytest.raises(OrchestratorHTTPError) as err:
        await api.upload(ACME, "fine-tune", "x.jsonl", b"{}")
    assert err.value.param == "purpose"
    with pytest.raises(OrchestratorHTTPError) as err:
        await api.upload(ACME, "batch", "x.jsonl", b"")
    assert err.value.param == "file"
    with pytest.raises(OrchestratorHTTPError) as err:
        await api.upload({"authorization": "Bearer nope"}, "batch", "x.jsonl", b"{}")
    assert err.value.status == 401


async def test_cancel_is_idempotent_and_shows_cancelling(api):
    file_id = await _upload(api)
    job = await api.create(ACME, {"input_file_id": file_id, "endpoint": CHAT,
                                  "completion_window": "1h"})  # fmt: skip
    assert (await api.cancel(ACME, job["id"]))["status"] == "cancelling"
    assert (await api.cancel(ACME, job["id"]))["status"] == "cancelling"
