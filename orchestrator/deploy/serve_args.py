"""The arguments the Serve application builder receives, and where the chart mounts files.

Invariant: `ServeAppArgs` is exactly the args dict of `orchestrator.serving.app:build_app`
(serveConfigV2 `applications[].args`); unknown keys are rejected.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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
    ledger_path: str | None = Field(None, description="SQLite usage ledger path")
    state_dir: str | None = Field(None, description="directory for learned state")


def mounted_args() -> ServeAppArgs:
    """The args the chart and `orchestrator render` give the app: the mounted ConfigMap files."""
    return ServeAppArgs(
        deployments=f"{CATALOG_DIR}/{CATALOG_FILE}",
        policy=f"{POLICY_DIR}/{POLICY_FILE}",
        ledger_path=LEDGER_PATH,
        state_dir=STATE_DIR,
    )
