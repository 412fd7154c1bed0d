"""Load a catalog file; errors name file, line, field and reason."""

from __future__ import annotations

from pathlib import Path

from orchestrator.catalog.schema import Catalog
from orchestrator.config_files import load_model_file


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a deployments file (raises config_files.ConfigError)."""
    return load_model_file(Catalog, path)
