"""Profile -> vLLM engine arguments: checked against vLLM's and Ray Serve LLM's own config objects."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.engines.config import (
    deployment_name,
    engine_kwargs,
    llm_config_dict,
    replica_env,
)
from orchestrator.paths import PROJECT_ROOT

GPU = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
LOCAL = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")


def _vllm_engine_arg_names() -> set[str]:
    from vllm.engine.arg_utils import AsyncEngineArgs

    return {f.name for f in dataclasses.fields(AsyncEngineArgs)}


def _vllm_frontend_arg_names() -> set[str]:
    from vllm.entrypoints.launchers.cli_args import FrontendArgs

    return {f.name for f in dataclasses.fields(FrontendArgs)}


@pytest.mark.parametrize("profile", GPU.profiles + LOCAL.profiles, ids=lambda p: p.name)
def test_engine_kwargs_build_vllm_engine_args(profile):
    """vLLM's own AsyncEngineArgs (and FrontendArgs, the OpenAI layer's, which ray.serve.llm
    splits off the same `engine_kwargs`) accept every argument; they raise on unknown ones."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.cli_args import FrontendArgs

    kwargs = engine_kwargs(profile, "/models/x")
    frontend_names = _vllm_frontend_arg_names()
    frontend = {k: v for k, v in kwargs.items() if k in frontend_names}
    engine = {k: v for k, v in kwargs.items() if k not in frontend_names}
    unknown = set(engine) - _vllm_engine_arg_names()
    assert not unknown, f"arguments vLLM does not know: {unknown}"
    FrontendArgs(**frontend)
    args = AsyncEngineArgs(model="/models/x", **engine)
    assert args.max_model_len == profile.max_model_len
    if profile.accelerator.is_gpu:
        assert args.tensor_parallel_size == profile.accelerator.tensor_parallel_size


@pytest.mark.parametrize("profile", GPU.profiles, ids=lambda p: p.name)
def test_quantization_and_speculative_method_are_known_to_vllm(profile):
    from vllm.config.speculative import SpeculativeMethod
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    kwargs = engine_kwargs(profile, "/models/x")
    if "quantization" in kwargs:
        assert kwargs["quantization"] in QUANTIZATION_METHODS
    spec = kwargs.get("speculative_config")
    if spec:
        assert spec["method"] in typing.get_args(SpeculativeMethod)
        assert spec["num_speculative_tokens"] >= 1


@pytest.mark.parametrize("profile", GPU.profiles + LOCAL.profiles, ids=lambda p: p.name)
def test_llm_config_validates_with_ray_serve_llm(profile):
    from ray.serve.llm import LLMConfig

    config = LLMConfig.model_validate(llm_config_dict(profile, "/models/x"))
    assert config.model_id == profile.name
    auto = config.deployment_config["autoscaling_config"]
    assert auto["min_replicas"] == profile.replicas.min
    assert auto["max_replicas"] == profile.replicas.max
    assert config.deployment_config["name"] == profile.name


def test_cpu_profile_sets_threads_and_cpu_engine_env():
    profile = LOCAL.profiles[0]
    env = replica_env(profile)
    assert env["OMP_NUM_THREADS"] == str(profile.accelerator.omp_threads)
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == str(profile.accelerator.kv_cache_gb)
    cfg = llm_config_dict(profile, "/m")
    assert cfg["accelerator_config"] == {"kind": "cpu"}
    assert "accelerator_type" not in cfg
    assert cfg["placement_group_config"]["bundles"] == [{"CPU": profile.accelerator.cpus}]


def test_gpu_profile_uses_accelerator_type_and_no_cpu_env():
    profile = GPU.profile("qwen3-235b-fp8")
    cfg = llm_config_dict(profile, "/m")
    assert cfg["accelerator_type"] == "H200"
    assert "OMP_NUM_THREADS" not in cfg["runtime_env"]["env_vars"]
    assert cfg["engine_kwargs"]["tensor_parallel_size"] == 4


def test_ngram_profile_maps_to_vllm_speculative_config():
    kwargs = engine_kwargs(LOCAL.profile("smollm2-cpu-ngram"), "/m")
    assert kwargs["speculative_config"] == {
        "method": "ngram",
        "num_speculative_tokens": 3,
        "prompt_lookup_min": 2,
        "prompt_lookup_max": 4,
    }


def test_deployment_name_is_prefixed_profile_name():
    assert deployment_name("smollm2-cpu") == "profile:smollm2-cpu"


def _with(profile, **update):
    return profile.model_copy(update=update)


def test_tool_call_parser_enables_auto_tool_choice_in_the_frontend_args():
    """The profile's parsers reach vLLM's OpenAI layer: ray.serve.llm's own split of
    `engine_kwargs` puts them in the FrontendArgs that `init_app_state` builds the chat
    serving object from."""
    from ray.serve.llm import LLMConfig

    profile = _with(LOCAL.profiles[0], tool_call_parser="hermes", reasoning_parser="deepseek_r1")
    config = LLMConfig.model_validate(llm_config_dict(profile, "/models/x"))
    engine_config = config.get_engine_config()
    assert engine_config.frontend_kwargs["enable_auto_tool_choice"] is True
    assert engine_config.frontend_kwargs["tool_call_parser"] == "hermes"
    merged = {**engine_config.frontend_kwargs, **engine_config.engine_kwargs}
    assert merged["reasoning_parser"] == "deepseek_r1"
    plain = engine_kwargs(LOCAL.profile("smollm2-cpu-ngram"), "/m")
    assert not {"enable_auto_tool_choice", "tool_call_parser", "reasoning_parser"} & set(plain)


@pytest.mark.parametrize(
    "profile",
    [p for p in GPU.profiles + LOCAL.profiles if p.tool_call_parser or p.reasoning_parser],
    ids=lambda p: p.name,
)
def test_catalog_parsers_are_registered_in_vllm(profile):
    from orchestrator.engines.config import unknown_parsers

    assert unknown_parsers(profile) == []


def test_unknown_parser_is_reported_by_name():
    from orchestrator.engines.config import unknown_parsers

    profile = _with(LOCAL.profiles[0], tool_call_parser="nope", reasoning_parser="nada")
    problems = unknown_parsers(profile)
    assert len(problems) == 2
    assert "tool_call_parser 'nope'" in problems[0] and "hermes" in problems[0]
    assert "reasoning_parser 'nada'" in problems[1]


def test_parsers_cannot_be_set_through_engine_args():
    from pydantic import ValidationError

    data = LOCAL.profiles[0].model_dump()
    data["engine_args"] = {"tool_call_parser": "hermes"}
    with pytest.raises(ValidationError, match="tool_call_parser"):
        type(LOCAL.profiles[0]).model_validate(data)


@pytest.mark.parametrize("profile", GPU.profiles + LOCAL.profiles, ids=lambda p: p.name)
def test_every_engine_schedules_by_request_priority(profile):
    """The ingress sends vLLM's `priority` (orchestrator.scheduling); vLLM accepts it only
    from an engine with `scheduling_policy: priority`, whatever the catalog's engine_args say."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    kwargs = engine_kwargs(
        profile.model_copy(update={"engine_args": {"scheduling_policy": "fcfs"}}), "/m"
    )
    assert kwargs["scheduling_policy"] == "priority"
    assert (
        AsyncEngineArgs(model="/m", scheduling_policy=kwargs["scheduling_policy"]).scheduling_policy
        == "priority"
    )
