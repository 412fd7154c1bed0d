"""Where the project's default files and the user's caches live."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEPLOYMENTS = PROJECT_ROOT / "deployments" / "local.yaml"
DEFAULT_POLICY = PROJECT_ROOT / "policies" / "default.yaml"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def cache_dir() -> Path:
    """User cache root (ORCHESTRATOR_CACHE_DIR overrides); created on demand."""
    root = Path(
        os.environ.get("ORCHESTRATOR_CACHE_DIR") or platformdirs.user_cache_dir("orchestrator")
    )
    root.mkdir(parents=True, exist_ok=True)
    return root


STATE_DIR_ENV = "ORCHESTRATOR_STATE_DIR"


def state_dir() -> Path:
    """User state root for the usage ledger and learned calibration ($ORCHESTRATOR_STATE_DIR)."""
    root = Path(os.environ.get(STATE_DIR_ENV) or platformdirs.user_state_dir("orchestrator"))
    root.mkdir(parents=True, exist_ok=True)
    return root
