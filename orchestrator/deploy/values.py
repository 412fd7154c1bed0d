"""The Helm chart's values, as one pydantic model.

This model is the single source of `helm/orchestrator/values.yaml` (written from the defaults
and field descriptions below) and of `helm/orchestrator/values.schema.json` (its JSON Schema);
`orchestrator render --values F` validates F against it, exactly as `helm install -f F` does
against the schema. Invariant: every object rejects unknown keys (`extra="forbid"` here,
`additionalProperties: false` in the schema); Kubernetes pass-through objects (resources,
tolerations, affinity, security contexts) are free-form mappings.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator import __version__
from orchestrator.control.ingress_scaling import (
    INGRESS_MAX_ONGOING_REQUESTS,
    INGRESS_TARGET_ONGOING_REQUESTS,
)

K8sObject = dict[str, Any]

# GPU Operator / GPU feature discovery label values per catalog accelerator type.
DEFAULT_GPU_NODE_SELECTORS: dict[str, dict[str, str]] = {
    "L4": {"nvidia.com/gpu.product": "NVIDIA-L4"},
    "A10G": {"nvidia.com/gpu.product": "NVIDIA-A10G"},
    "L40S": {"nvidia.com/gpu.product": "NVIDIA-L40S"},
    "A100-40G": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"},
    "A100-80G": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
    "H100": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "H200": {"nvidia.com/gpu.product": "NVIDIA-H200"},
    "B200": {"nvidia.com/gpu.product": "NVIDIA-B200"},
}


INGRESS_BOUNDS_MESSAGE = "ingress.minReplicas exceeds ingress.maxReplicas"
INGRESS_NEEDS_DATABASE_MESSAGE = (
    "ingress.maxReplicas > 1 needs a shared ledger: set database.url or database.existingSecret "
    "(PostgreSQL); the SQLite ledger is one pod's file, so replicas would each count budgets "
    "and decisions apart"
)


class _Values(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageValues(_Values):
    repository: str = Field(
        "orchestrator",
        min_length=1,
        description="Image with Ray 2.60 and `pip install orchestrator[gpu]` (recipe: k8s/Dockerfile)",
    )
    tag: str = Field(__version__, min_length=1, description="Image tag (the orchestrator version)")
    pullPolicy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Kubernetes imagePullPolicy for every Ray container"
    )


class ConfigSource(_Values):
    content: str = Field(
        "",
        description="The file's YAML text (`--set-file`); empty = the file bundled in the chart",
    )
    existingConfigMap: str = Field(
        "",
        description="Use this existing ConfigMap instead of a chart-managed one",
    )
    key: str = Field(
        "", description="Key of the file in existingConfigMap (empty = the default file name)"
    )


class ServeValues(_Values):
    applicationName: str = Field(
        "orchestrator", pattern=r"^[a-z0-9][a-z0-9-]*$", description="Serve application name"
    )
    routePrefix: str = Field("/", pattern=r"^/", description="Serve route prefix of the app")
    port: int = Field(8000, ge=1, le=65535, description="Serve HTTP port (the OpenAI endpoint)")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables for the Serve app (its runtime_env)",
    )


class TenantKeysValues(_Values):
    existingSecret: str = Field(
        "",
        description=(
            "Secret holding tenant API keys: each key becomes an env var (policy `env` refs) and "
            "a file under /var/run/secrets/orchestrator (policy `file` refs); empty = no keys"
        ),
    )


class LedgerValues(_Values):
    enabled: bool = Field(
        True, description="Keep the SQLite usage ledger on a PersistentVolumeClaim"
    )
    existingClaim: str = Field("", description="Use this PVC instead of creating one")
    size: str = Field("10Gi", description="Requested size of the ledger PVC")
    storageClassName: str = Field("", description="StorageClass of the PVC (empty = default)")
    accessModes: list[str] = Field(
        default_factory=lambda: ["ReadWriteOnce"], description="PVC access modes"
    )


class DatabaseValues(_Values):
    url: str = Field(
        "",
        pattern=r"^((postgresql|postgres)(\+psycopg)?://.+)?$",
        description=(
            "PostgreSQL URL of the shared ledger (postgresql://user:pw@host:5432/db); the chart "
            "keeps it in a Secret of its own. Prefer existingSecret (the URL then never enters "
            "the release's values). Empty (and no existingSecret) = the SQLite ledger"
        ),
    )
    existingSecret: str = Field("", description="Secret holding the PostgreSQL URL (wins over url)")
    existingSecretKey: str = Field(
        "url", min_length=1, description="Key of the URL in existingSecret"
    )

    @property
    def configured(self) -> bool:
        """A PostgreSQL database is set (by URL or by Secret)."""
        return bool(self.url or self.existingSecret)


class IngressValues(_Values):
    minReplicas: int = Field(1, ge=1, description="Ingress replicas Serve always runs")
    maxReplicas: int = Field(
        1,
        ge=1,
        description="Ingress replicas Serve may scale out to by ongoing requests (>1 needs database)",
    )
    targetOngoingRequests: float = Field(
        INGRESS_TARGET_ONGOING_REQUESTS,
        gt=0,
        le=INGRESS_MAX_ONGOING_REQUESTS,
        description="Ongoing requests per ingress replica Serve scales towards",
    )


class HeadValues(_Values):
    rayStartParams: dict[str, str] = Field(
        default_factory=lambda: {"dashboard-host": "0.0.0.0"},
        description="Extra `ray start` parameters for the head (KubeRay rayStartParams)",
    )
    resources: K8sObject = Field(
        default_factory=lambda: {
            "requests": {"cpu": "1", "memory": "4Gi"},
            "limits": {"cpu": "2", "memory": "8Gi"},
        },
        description="Head container resources (holds the Serve controller and the ledger)",
    )
    nodeSelector: dict[str, str] = Field(default_factory=dict, description="Head nodeSelector")
    tolerations: list[K8sObject] = Field(default_factory=list, description="Head tolerations")
    affinity: K8sObject = Field(default_factory=dict, description="Head affinity")


class CpuWorkersValues(_Values):
    enabled: bool = Field(True, description="Run the CPU worker group (ingress and CPU profiles)")
    replicas: int = Field(1, ge=0, description="Initial CPU worker pods")
    minReplicas: int = Field(1, ge=0, description="Autoscaler lower bound")
    maxReplicas: int = Field(2, ge=0, description="Autoscaler upper bound")
    rayStartParams: dict[str, str] = Field(
        default_factory=dict, description="Extra `ray start` parameters for CPU workers"
    )
    resources: K8sObject = Field(
        default_factory=lambda: {
            "requests": {"cpu": "2", "memory": "12Gi"},
            "limits": {"cpu": "2", "memory": "12Gi"},
        },
        description="CPU worker container resources",
    )
    nodeSelector: dict[str, str] = Field(
        default_factory=dict, description="CPU worker nodeSelector"
    )
    tolerations: list[K8sObject] = Field(default_factory=list, description="CPU worker tolerations")
    affinity: K8sObject = Field(default_factory=dict, description="CPU worker affinity")


class GpuWorkersValues(_Values):
    memoryGiBPerGpu: int = Field(
        64, ge=1, description="Container memory per GPU in a GPU worker pod, GiB"
    )
    rayStartParams: dict[str, str] = Field(
        default_factory=dict, description="Extra `ray start` parameters for GPU workers"
    )
    nodeSelectorByType: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_GPU_NODE_SELECTORS.items()},
        description="nodeSelector per catalog accelerator type (GPU feature discovery labels)",
    )
    tolerations: list[K8sObject] = Field(
        default_factory=lambda: [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ],
        description="Tolerations of every GPU worker group",
    )
    affinity: K8sObject = Field(default_factory=dict, description="GPU worker affinity")


class AutoscalingValues(_Values):
    enabled: bool = Field(True, description="KubeRay in-tree Ray autoscaler")
    idleTimeoutSeconds: int = Field(
        300, ge=0, description="Seconds an idle worker pod lives before scale-down"
    )


class VolumesValues(_Values):
    tmpSizeLimit: str = Field("16Gi", description="emptyDir for /tmp (Ray's session dir)")
    cacheSizeLimit: str = Field(
        "200Gi", description="emptyDir for /home/ray/.cache (model weights, compile caches)"
    )
    shmSizeLimit: str = Field("16Gi", description="Memory-backed /dev/shm (object store, NCCL)")


class ServiceValues(_Values):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="Type of the OpenAI endpoint Service"
    )
    port: int = Field(8000, ge=1, le=65535, description="Service port of the OpenAI endpoint")
    annotations: dict[str, str] = Field(default_factory=dict, description="Service annotations")


class ServiceAccountValues(_Values):
    create: bool = Field(True, description="Create the ServiceAccount the Ray pods run as")
    name: str = Field("", description="ServiceAccount name (empty = the release fullname)")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="ServiceAccount annotations"
    )


class RbacValues(_Values):
    create: bool = Field(True, description="Role + RoleBinding: read ConfigMaps, create Events")


class NetworkPolicyValues(_Values):
    enabled: bool = Field(True, description="Restrict ingress to the Ray pods")
    clients: list[K8sObject] = Field(
        default_factory=list,
        description="NetworkPolicy peers allowed to call the OpenAI port (empty = everyone)",
    )
    operatorPeers: list[K8sObject] = Field(
        default_factory=lambda: [
            {
                "namespaceSelector": {},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}},
            }
        ],
        description="Peers allowed to reach the Ray dashboard/agent ports (the KubeRay operator)",
    )
    metricsPeers: list[K8sObject] = Field(
        default_factory=lambda: [{"namespaceSelector": {}}],
        description="Peers allowed to scrape Ray metrics (port 8080)",
    )


class ServiceMonitorValues(_Values):
    enabled: bool = Field(False, description="Create a prometheus-operator ServiceMonitor")
    interval: str = Field("30s", description="Scrape interval")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels (for selectors)")


class PrometheusRuleValues(_Values):
    enabled: bool = Field(False, description="Create a PrometheusRule: budget burn and SLO breach")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels (for selectors)")
    budgetRemainingRatio: float = Field(
        0.1, gt=0, lt=1, description="Alert when a tenant has less than this share of budget left"
    )
    burnRateFactor: float = Field(
        2.0, gt=0, description="Alert when the last hour's spend rate exceeds budget pace by this"
    )
    sloAttainmentTarget: float = Field(
        0.95, gt=0, le=1, description="Alert when SLO attainment over 30 min falls below this"
    )


class DashboardValues(_Values):
    enabled: bool = Field(False, description="Ship the Grafana dashboard as a ConfigMap")
    labels: dict[str, str] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description="Labels the Grafana sidecar selects dashboards by",
    )


class MetricsValues(_Values):
    serviceMonitor: ServiceMonitorValues = ServiceMonitorValues()
    prometheusRule: PrometheusRuleValues = PrometheusRuleValues()
    dashboard: DashboardValues = DashboardValues()


class GeneratedWorkerGroup(_Values):
    """One GPU worker group: the pods of one node type (by default one per accelerator type)."""

    groupName: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    acceleratorType: str
    gpusPerPod: int = Field(ge=1)
    cpusPerPod: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?$")
    minReplicas: int = Field(ge=0)
    maxReplicas: int = Field(ge=0)
    profiles: list[str]
    nodeLabels: dict[str, str] = Field(
        default_factory=dict, description="Ray node labels the group's pods start with"
    )


class GeneratedValues(_Values):
    """Facts derived from the catalog by `orchestrator render --chart-values`; never hand-edited."""

    catalogSha256: str = Field("", pattern=r"^([0-9a-f]{64})?$")
    cpuProfiles: list[str] = Field(default_factory=list)
    cpuNodeLabels: dict[str, str] = Field(
        default_factory=dict, description="Ray node labels the `cpu` group's pods start with"
    )
    gpuWorkerGroups: list[GeneratedWorkerGroup] = Field(default_factory=list)


class ChartValues(_Values):
    """Everything `helm install -f` accepts for the orchestrator chart."""

    nameOverride: str = Field("", description="Replaces the chart name in resource names")
    fullnameOverride: str = Field("", description="Replaces the full resource name prefix")
    image: ImageValues = ImageValues()
    imagePullSecrets: list[dict[str, str]] = Field(
        default_factory=list, description="Pull secrets of every Ray pod, e.g. [{name: regcred}]"
    )
    rayVersion: str = Field("2.60.0", description="Ray version inside the image (KubeRay needs it)")
    extraEnv: list[K8sObject] = Field(
        default_factory=list,
        description=(
            "Extra env vars of every Ray container (Kubernetes EnvVar objects), e.g. HF_TOKEN "
            "from a Secret, OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    catalog: ConfigSource = Field(
        default_factory=ConfigSource,
        description="Profile catalog (the one source of truth for profiles and worker groups)",
    )
    policy: ConfigSource = Field(
        default_factory=ConfigSource,
        description="SRE policy; edit its ConfigMap to change it live (the server hot-reloads it)",
    )
    serve: ServeValues = ServeValues()
    tenantKeys: TenantKeysValues = TenantKeysValues()
    ledger: LedgerValues = LedgerValues()
    database: DatabaseValues = Field(
        default_factory=DatabaseValues,
        description="PostgreSQL for the ledger, shared by every ingress replica (see docs/storage.md)",
    )
    ingress: IngressValues = Field(
        default_factory=IngressValues,
        description="Replicas of the ingress (the OpenAI endpoint's router) Serve scales between",
    )
    head: HeadValues = HeadValues()
    cpuWorkers: CpuWorkersValues = CpuWorkersValues()
    gpuWorkers: GpuWorkersValues = GpuWorkersValues()
    autoscaling: AutoscalingValues = AutoscalingValues()
    podSecurityContext: K8sObject = Field(
        default_factory=lambda: {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 100,
            "fsGroup": 100,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        description="Pod securityContext of every Ray pod (the ray image's user is uid 1000)",
    )
    containerSecurityContext: K8sObject = Field(
        default_factory=lambda: {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        description="Container securityContext (writable paths are emptyDir volumes)",
    )
    volumes: VolumesValues = VolumesValues()
    service: ServiceValues = ServiceValues()
    serviceAccount: ServiceAccountValues = ServiceAccountValues()
    rbac: RbacValues = RbacValues()
    networkPolicy: NetworkPolicyValues = NetworkPolicyValues()
    metrics: MetricsValues = MetricsValues()
    generated: GeneratedValues = Field(
        default_factory=GeneratedValues,
        description="Written by `orchestrator render --chart-values`: do not edit by hand",
    )

    @model_validator(mode="after")
    def _ingress_replicas_fit_the_ledger(self) -> ChartValues:
        """The same refusals as the chart's template (helpers `orchestrator.checkIngress`)."""
        ing = self.ingress
        if ing.minReplicas > ing.maxReplicas:
            raise ValueError(INGRESS_BOUNDS_MESSAGE)
        if ing.maxReplicas > 1 and not self.database.configured:
            raise ValueError(INGRESS_NEEDS_DATABASE_MESSAGE)
        return self
