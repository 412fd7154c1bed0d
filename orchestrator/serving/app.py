"""Ray Serve application builder: one ray.serve.llm deployment per profile plus our ingress.

`build_app` is the import path KubeRay's serveConfigV2 and `orchestrator serve` both use:
`orchestrator.serving.app:build_app` with args `{"deployments": PATH, "policy": PATH, ...}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.catalog import Catalog, load_catalog
from orchestrator.cluster.node_cores import share_node_cores
from orchestrator.control.ingress_scaling import (
    INGRESS_MAX_ONGOING_REQUESTS,
    INGRESS_TARGET_ONGOING_REQUESTS,
    IngressScaling,
)
from orchestrator.control.serve_policy import ingress_autoscaling_config, profile_serve_options
from orchestrator.engines.config import (
    DEPLOYMENT_PREFIX,
    llm_config_dict,
    serve_placement_options,
    unknown_parsers,
)
from orchestrator.models import resolve_model
from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY
from orchestrator.policy.loader import load_policy
from orchestrator.raycompat.model_cards import model_card
from orchestrator.serving.storage_target import check_ingress_replicas, resolve_target
from orchestrator.storage.target import backend

INGRESS_NUM_CPUS = 0.25


class AppArgs(BaseModel):
    """Arguments of the Serve application (serveConfigV2 `args`)."""

    model_config = ConfigDict(extra="forbid")

    deployments: str = Field(str(DEFAULT_DEPLOYMENTS), description="profile catalog file")
    policy: str = Field(str(DEFAULT_POLICY), description="policy file (watched, hot-reloaded)")
    ledger: str | None = Field(
        None,
        description=(
            "usage ledger: a SQLite file path or a postgresql:// URL (default: "
            "$ORCHESTRATOR_DATABASE_URL, else the SQLite file in the state directory)"
        ),
    )
    state_dir: str | None = Field(None, description="directory for learned state (calibration)")
    ingress_num_cpus: float = Field(INGRESS_NUM_CPUS, ge=0)
    node_cpus: int | None = Field(
        None,
        ge=1,
        description="the app runs on ONE node with this many cores (a local cluster): its CPU "
        "engines get disjoint cores and share the node's capacity (orchestrator.cluster."
        "node_cores); unset: every engine keeps the catalog's settings",
    )
    ingress_node_labels: dict[str, str] = Field(
        default_factory=dict,
        description="node labels the ingress replica's node must carry (Ray label selector)",
    )
    ingress_min_replicas: int = Field(1, ge=1, description="ingress replicas Serve always runs")
    ingress_max_replicas: int = Field(
        1, ge=1, description="ingress replicas Serve may scale out to (>1 needs PostgreSQL)"
    )
    ingress_target_ongoing_requests: float = Field(
        INGRESS_TARGET_ONGOING_REQUESTS,
        gt=0,
        description="ongoing requests per ingress replica Serve scales towards",
    )

    def ingress_scaling(self) -> IngressScaling:
        """The ingress's replica bounds and target (ValueError when min exceeds max)."""
        return IngressScaling(
            min_replicas=self.ingress_min_replicas,
            max_replicas=self.ingress_max_replicas,
            target_ongoing_requests=self.ingress_target_ongoing_requests,
        )


def write_node_catalog(catalog: Catalog, state_dir: str | None) -> str:
    """The catalog as this node runs it (cores bound), as a file the controller reads."""
    import yaml

    from orchestrator.paths import state_dir as default_state_dir

    folder = Path(state_dir) if state_dir else default_state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.this-node.yaml"
    data = catalog.model_dump(mode="json", exclude_none=True)
    path.write_text(
        "# written by orchestrator serve: the catalog with this node's cores shared between\n"
        "# its CPU engines (orchestrator/cluster/node_cores.py); edit the original instead\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    return str(path)


# Ray gives the head node this resource (1.0); asking for a sliver of it pins to the head
HEAD_NODE_RESOURCE = "node:__internal_head__"


def ingress_actor_options(app_args: AppArgs) -> dict[str, Any]:
    """Ray actor options of the ingress replica: its CPUs, and where it runs: on nodes with
    the labels it is pinned to, else, with a SQLite ledger, on the head node (the file, and
    the chart's ledger volume, live there: a replica placed on a worker would write a ledger
    of its own, lost with the pod, and budgets would start again from nothing)."""
    options: dict[str, Any] = {"num_cpus": app_args.ingress_num_cpus}
    if app_args.ingress_node_labels:
        options["label_selector"] = dict(app_args.ingress_node_labels)
    elif backend(resolve_target(app_args.ledger)) == "sqlite":
        options["resources"] = {HEAD_NODE_RESOURCE: 0.001}
    return options


def build_llm_configs(catalog: Catalog) -> dict[str, Any]:
    """The ray.serve.llm `LLMConfig` of every profile, keyed by profile name."""
    from ray.serve.llm import LLMConfig

    problems = [msg for p in catalog.profiles for msg in unknown_parsers(p)]
    if problems:  # before any engine starts, rather than as a replica crash loop
        raise ValueError("; ".join(problems))
    return {
        p.name: LLMConfig.model_validate(llm_config_dict(p, resolve_model(p.model)))
        for p in catalog.profiles
    }


def build_profile_deployments(
    configs: dict[str, Any], catalog: Catalog, controller: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One ray.serve.llm LLMServer deployment per profile, keyed by profile name, pinned to the
    nodes its `placement` names; `controller` adds each profile's autoscaling options (the
    planner's Serve policy, drain timeout; see orchestrator.control.serve_policy)."""
    from ray.serve.config import RequestRouterConfig
    from ray.serve.llm import build_llm_deployment

    from orchestrator.engines.stub import is_stub
    from orchestrator.serving.profile_server import ProfileServer
    from orchestrator.serving.stub_engine import StubEngine

    # replicas of a profile are chosen by prefix affinity (KV-cache reuse) unless loaded
    router = RequestRouterConfig(
        request_router_class="orchestrator.routing.replica_router:PrefixAffinityRouter",
        request_router_kwargs={"prefix_chars": 1024, "imbalance_threshold": 4},
        request_routing_stats_period_s=1.0,
        request_routing_stats_timeout_s=5.0,
    )
    return {
        name: build_llm_deployment(
            config,
            name_prefix=DEPLOYMENT_PREFIX,
            deployment_cls=ProfileServer,
            # LLMServer's engine hook: a stub profile's replicas run no model (load tests)
            bind_kwargs={"engine_cls": StubEngine} if is_stub(config) else None,
            override_serve_options={
                "request_router_config": router,
                **serve_placement_options(catalog.profile(name)),
                **(controller or {}).get(name, {}),
            },
        )
        for name, config in configs.items()
    }


def build_app(args: dict[str, Any] | None = None) -> Any:
    """Build the orchestrator Serve application from its args (see `AppArgs`)."""
    from ray import serve

    from orchestrator.serving.ingress import OrchestratorIngress, fastapi_app

    app_args = AppArgs.model_validate(args or {})
    scaling = app_args.ingress_scaling()
    # resolved here, where the app is built: a SQLite ledger cannot be shared by replicas
    check_ingress_replicas(resolve_target(app_args.ledger), scaling.max_replicas)
    catalog = load_catalog(Path(app_args.deployments))
    deployments_path = str(Path(app_args.deployments).resolve())
    if app_args.node_cpus:
        shared = share_node_cores(catalog, app_args.node_cpus)
        if shared != catalog:  # one catalog for engines, router and planner alike
            catalog = shared
            deployments_path = write_node_catalog(catalog, app_args.state_dir)
    configs = build_llm_configs(catalog)
    # the controller (issue 13): Serve runs the planner through these autoscaling policies
    policy_path = str(Path(app_args.policy).resolve())
    policy = load_policy(policy_path, catalog, resolve_secrets=False)
    controller = {
        p.name: profile_serve_options(p, policy, deployments_path, policy_path)
        for p in catalog.profiles
    }
    deployments = build_profile_deployments(configs, catalog, controller)
    model_cards = {name: model_card(name, config) for name, config in configs.items()}
    ingress_cls = serve.ingress(fastapi_app)(OrchestratorIngress)
    ingress = serve.deployment(
        ingress_cls,
        name="ingress",
        autoscaling_config=ingress_autoscaling_config(deployments_path, policy_path, scaling),
        max_ongoing_requests=INGRESS_MAX_ONGOING_REQUESTS,
        ray_actor_options=ingress_actor_options(app_args),
        graceful_shutdown_timeout_s=60,
    )
    return ingress.bind(
        deployments,
        model_cards,
        catalog=catalog.model_dump(mode="json"),
        policy_path=policy_path,
        ledger=app_args.ledger,
        state_dir=app_args.state_dir,
    )
