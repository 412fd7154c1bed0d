"""Build the KubeRay RayService (ray.io/v1) from chart values and the catalog's derived facts.

Pure: plain dicts in, a plain dict out. `helm/orchestrator/templates/rayservice.yaml` assembles
the same object from the same inputs; tests/helm renders both and asserts they are equal, so
the two cannot drift apart unnoticed.

Invariants:
- the head group holds the Serve controller and the usage ledger (the PVC is mounted there only);
- one CPU worker group (ingress + CPU profiles) and one GPU group per accelerator type;
- the catalog and policy ConfigMaps are mounted as directories (never subPath), so a policy
  edit reaches the pods by kubelet's symlink swap and the server hot-reloads it;
- the head pod template carries the catalog's SHA-256: a catalog change rolls a new RayCluster
  (KubeRay's zero-downtime upgrade), a policy change does not.
"""

from __future__ import annotations

from typing import Any

import yaml

from orchestrator.catalog.schema import NODE_TYPE_LABEL
from orchestrator.deploy import names
from orchestrator.deploy.serve_args import (
    CACHE_DIR,
    CATALOG_DIR,
    CATALOG_FILE,
    IMPORT_PATH,
    POLICY_DIR,
    POLICY_FILE,
    SHM_DIR,
    STATE_DIR,
    STATE_ROOT,
    TENANT_KEYS_DIR,
    TMP_DIR,
    mounted_args,
)
from orchestrator.deploy.values import (
    ChartValues,
    CpuWorkersValues,
    GeneratedValues,
    GeneratedWorkerGroup,
    GpuWorkersValues,
    HeadValues,
)
from orchestrator.deploy.workers import CPU_GROUP, HEAD_NODE_TYPE, ray_labels
from orchestrator.serving.storage_target import DATABASE_URL_ENV

CATALOG_SHA_ANNOTATION = "orchestrator.io/catalog-sha256"
Obj = dict[str, Any]


def serve_config(values: ChartValues) -> Obj:
    """The Serve config (serveConfigV2, as an object): one app built by the orchestrator."""
    app: Obj = {
        "name": values.serve.applicationName,
        "route_prefix": values.serve.routePrefix,
        "import_path": IMPORT_PATH,
        "args": mounted_args(values).model_dump(exclude_none=True),
    }
    if values.serve.env:
        app["runtime_env"] = {"env_vars": dict(values.serve.env)}
    return {
        "http_options": {"host": "0.0.0.0", "port": values.serve.port},
        "applications": [app],
    }


def _volumes(values: ChartValues, release: str, head: bool) -> list[Obj]:
    v = values.volumes
    catalog_key = values.catalog.key or CATALOG_FILE
    policy_key = values.policy.key or POLICY_FILE
    out: list[Obj] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": v.tmpSizeLimit}},
        {"name": "cache", "emptyDir": {"sizeLimit": v.cacheSizeLimit}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": v.shmSizeLimit}},
        {
            "name": "catalog",
            "configMap": {
                "name": names.catalog_configmap(release, values),
                "items": [{"key": catalog_key, "path": CATALOG_FILE}],
            },
        },
        {
            "name": "policy",
            "configMap": {
                "name": names.policy_configmap(release, values),
                "items": [{"key": policy_key, "path": POLICY_FILE}],
            },
        },
    ]
    if values.tenantKeys.existingSecret:
        out.append(
            {"name": "tenant-keys", "secret": {"secretName": values.tenantKeys.existingSecret}}
        )
    if head and values.ledger.enabled:
        claim = names.ledger_claim(release, values)
        out.append({"name": "state", "persistentVolumeClaim": {"claimName": claim}})
    else:
        out.append({"name": "state", "emptyDir": {}})
    return out


def _mounts(values: ChartValues) -> list[Obj]:
    out: list[Obj] = [
        {"name": "tmp", "mountPath": TMP_DIR},
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "shm", "mountPath": SHM_DIR},
        {"name": "catalog", "mountPath": CATALOG_DIR, "readOnly": True},
        {"name": "policy", "mountPath": POLICY_DIR, "readOnly": True},
    ]
    if values.tenantKeys.existingSecret:
        out.append({"name": "tenant-keys", "mountPath": TENANT_KEYS_DIR, "readOnly": True})
    out.append({"name": "state", "mountPath": STATE_ROOT})
    return out


def _env(values: ChartValues, release: str) -> list[Obj]:
    env: list[Obj] = [
        {"name": "ORCHESTRATOR_STATE_DIR", "value": STATE_DIR},
        {"name": "ORCHESTRATOR_CACHE_DIR", "value": f"{CACHE_DIR}/orchestrator"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    if values.database.configured:
        name, key = names.database_secret(release, values)
        env.append(
            {
                "name": DATABASE_URL_ENV,
                "valueFrom": {"secretKeyRef": {"name": name, "key": key}},
            }
        )
    return [*env, *values.extraEnv]


def _ports(values: ChartValues, head: bool) -> list[Obj]:
    ports: list[Obj] = []
    if head:
        ports += [
            {"name": "gcs-server", "containerPort": 6379},
            {"name": "dashboard", "containerPort": 8265},
            {"name": "client", "containerPort": 10001},
        ]
    ports += [
        {"name": "serve", "containerPort": values.serve.port},
        {"name": "metrics", "containerPort": 8080},
    ]
    return ports


def _pod_template(
    values: ChartValues,
    release: str,
    component: str,
    group: HeadValues | CpuWorkersValues | GpuWorkersValues,
    *,
    resources: Obj,
    node_selector: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> Obj:
    """The pod of a Ray node group: one container named `component` (ray-head or ray-worker)
    with `resources`, placed by `node_selector` and the group's tolerations and affinity."""
    head = component == "ray-head"
    main: Obj = {
        "name": component,
        "image": f"{values.image.repository}:{values.image.tag}",
        "imagePullPolicy": values.image.pullPolicy,
        "ports": _ports(values, head),
        "env": _env(values, release),
    }
    if values.tenantKeys.existingSecret:
        main["envFrom"] = [{"secretRef": {"name": values.tenantKeys.existingSecret}}]
    main["resources"] = resources
    main["securityContext"] = values.containerSecurityContext
    main["volumeMounts"] = _mounts(values)
    metadata: Obj = {
        "labels": {
            **names.selector_labels(release, values),
            "app.kubernetes.io/component": component,
        }
    }
    if annotations:
        metadata["annotations"] = annotations
    spec: Obj = {
        "serviceAccountName": names.service_account_name(release, values),
        "securityContext": values.podSecurityContext,
    }
    if values.imagePullSecrets:
        spec["imagePullSecrets"] = values.imagePullSecrets
    if node_selector:
        spec["nodeSelector"] = node_selector
    if group.tolerations:
        spec["tolerations"] = group.tolerations
    if group.affinity:
        spec["affinity"] = group.affinity
    spec["containers"] = [main]
    spec["volumes"] = _volumes(values, release, head)
    return {"metadata": metadata, "spec": spec}


def _gpu_group(values: ChartValues, release: str, g: GeneratedWorkerGroup) -> Obj:
    gw = values.gpuWorkers
    memory = f"{gw.memoryGiBPerGpu * g.gpusPerPod}Gi"
    resources = {
        "requests": {"cpu": g.cpusPerPod, "memory": memory},
        "limits": {"cpu": g.cpusPerPod, "memory": memory, "nvidia.com/gpu": g.gpusPerPod},
    }
    return {
        "groupName": g.groupName,
        "replicas": g.minReplicas,
        "minReplicas": g.minReplicas,
        "maxReplicas": g.maxReplicas,
        "rayStartParams": {**gw.rayStartParams, "labels": ray_labels(g.nodeLabels)},
        "template": _pod_template(
            values,
            release,
            "ray-worker",
            gw,
            resources=resources,
            node_selector=gw.nodeSelectorByType.get(g.acceleratorType, {}),
        ),
    }


def _cpu_group(values: ChartValues, release: str, generated: GeneratedValues) -> Obj:
    cw = values.cpuWorkers
    labels = generated.cpuNodeLabels or {NODE_TYPE_LABEL: CPU_GROUP}
    return {
        "groupName": CPU_GROUP,
        "replicas": cw.replicas,
        "minReplicas": cw.minReplicas,
        "maxReplicas": cw.maxReplicas,
        "rayStartParams": {**cw.rayStartParams, "labels": ray_labels(labels)},
        "template": _pod_template(
            values, release, "ray-worker", cw, resources=cw.resources, node_selector=cw.nodeSelector
        ),
    }


def build_rayservice(
    values: ChartValues,
    generated: GeneratedValues,
    *,
    release: str = names.CHART_NAME,
    namespace: str | None = None,
) -> Obj:
    """The RayService object for `values` and the catalog facts in `generated`."""
    head = values.head
    cluster: Obj = {
        "rayVersion": values.rayVersion,
        "enableInTreeAutoscaling": values.autoscaling.enabled,
    }
    if values.autoscaling.enabled:
        cluster["autoscalerOptions"] = {
            "upscalingMode": "Default",
            "idleTimeoutSeconds": values.autoscaling.idleTimeoutSeconds,
            "securityContext": values.containerSecurityContext,
        }
    cluster["headGroupSpec"] = {
        "rayStartParams": {
            **head.rayStartParams,
            "labels": ray_labels({NODE_TYPE_LABEL: HEAD_NODE_TYPE}),
        },
        "template": _pod_template(
            values,
            release,
            "ray-head",
            head,
            resources=head.resources,
            node_selector=head.nodeSelector,
            annotations={CATALOG_SHA_ANNOTATION: generated.catalogSha256},
        ),
    }
    groups: list[Obj] = []
    if values.cpuWorkers.enabled:
        groups.append(_cpu_group(values, release, generated))
    groups += [_gpu_group(values, release, g) for g in generated.gpuWorkerGroups]
    cluster["workerGroupSpecs"] = groups
    metadata: Obj = {"name": names.fullname(release, values)}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = names.common_labels(release, values)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": metadata,
        "spec": {
            "upgradeStrategy": {"type": "NewCluster"},
            "serveConfigV2": yaml.safe_dump(serve_config(values), sort_keys=False),
            "rayClusterConfig": cluster,
        },
    }
