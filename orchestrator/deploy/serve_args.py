"""The arguments the Serve application builder receives, and where the chart mounts files.

Invariant: `ServeAppArgs` is exactly the args dict of `orchestrator.serving.app:build_app`
(serveConfigV2 `applications[].args`); unknown keys are rejected.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.control.ingress_scaling import INGRESS_TARGET_ONGOING_REQUESTS
from orchestrator.deploy.values import ChartValues

IMPORT_PATH = "orchestrator.serving.app:build_app"

CATALOG_DIR = "/etc/orchestrator/catalog"
CATALOG_FILE = "catalog.yaml"
POLICY_DIR = "/etc/orchestrator/policy"
POLICY_FILE = "policy.yaml"
TENANT_KEYS_DIR = "/var/run/secrets/orchestrator"  # where policies/examples point file refs
STATE_ROOT = "/var/lib/orchestrator"
LEDGER_PATH = f"{STATE_ROOT}/ledger.sqlite"
STATE_DIR = f"{STATE_ROOT}/state"
TMP_DIR = "/tmp"
CACHE_DIR = "/home/ray/.cache"
SHM_DIR = "/dev/shm"


class ServeAppArgs(BaseModel):
    """Args of the Serve application builder (paths inside the Ray pods)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployments: str = Field(min_length=1, description="catalog YAML path")
    policy: str = Field(min_length=1, description="policy YAML path (watched for hot reload)")
    ledger: str | None = Field(
        None, description="SQLite ledger path (absent: the URL in $ORCHESTRATOR_DATABASE_URL)"
    )
    state_dir: str | None = Field(None, description="directory for learned state")
    ingress_min_replicas: int = Field(1, ge=1)
    ingress_max_replicas: int = Field(1, ge=1)
    ingress_target_ongoing_requests: float = Field(INGRESS_TARGET_ONGOING_REQUESTS, gt=0)


def mounted_args(values: ChartValues) -> ServeAppArgs:
    """The args the chart and `orchestrator render` give the app: the mounted ConfigMap files,
    the SQLite ledger on the head's volume unless a database is set (its URL then comes from
    a Secret, as an env var: never in the serve config), the ingress's replica bounds."""
    return ServeAppArgs(
        deployments=f"{CATALOG_DIR}/{CATALOG_FILE}",
        policy=f"{POLICY_DIR}/{POLICY_FILE}",
        ledger=None if values.database.configured else LEDGER_PATH,
        state_dir=STATE_DIR,
        ingress_min_replicas=values.ingress.minReplicas,
        ingress_max_replicas=values.ingress.maxReplicas,
        ingress_target_ongoing_requests=values.ingress.targetOngoingRequests,
    )
