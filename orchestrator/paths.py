"""Where the project's default files and the user's caches live.

The default catalog and policy are read from the source tree when the package runs from one
(an editable install, a checkout); a regular install (wheel, container image) carries them
as data files under `<prefix>/share/orchestrator/`. ORCHESTRATOR_HOME overrides both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOME_ENV = "ORCHESTRATOR_HOME"


def defaults_root(source_root: Path = PROJECT_ROOT, prefix: Path = Path(sys.prefix)) -> Path:
    """The folder holding `deployments/` and `policies/`: $ORCHESTRATOR_HOME, else the source
    tree when it has them, else the installed data files, else the source tree (so a missing
    file is reported at its expected path)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override)
    if (source_root / "deployments").is_dir():
        return source_root
    installed = prefix / "share" / "orchestrator"
    return installed if (installed / "deployments").is_dir() else source_root


DEFAULTS_ROOT = defaults_root()
DEFAULT_DEPLOYMENTS = DEFAULTS_ROOT / "deployments" / "local.yaml"
DEFAULT_POLICY = DEFAULTS_ROOT / "policies" / "default.yaml"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def cache_dir() -> Path:
    """User cache root (ORCHESTRATOR_CACHE_DIR overrides); created on demand."""
    root = Path(
        os.environ.get("ORCHESTRATOR_CACHE_DIR") or platformdirs.user_cache_dir("orchestrator")
    )
    root.mkdir(parents=True, exist_ok=True)
    return root


STATE_DIR_ENV = "ORCHESTRATOR_STATE_DIR"


def state_dir(root: Path | str | None = None) -> Path:
    """State root for the usage ledger and learned calibration: `root` when given (a server
    passes its own explicitly), else $ORCHESTRATOR_STATE_DIR, else the user's state folder;
    created on demand."""
    if root is None:
        root = os.environ.get(STATE_DIR_ENV) or platformdirs.user_state_dir("orchestrator")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return root
