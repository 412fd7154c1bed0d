"""Shared fixtures: router views of the real catalogs in deployments/."""

from __future__ import annotations

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.replica_model import LiveState
from orchestrator.routing import ProfileView, catalog_views

GPU = PROJECT_ROOT / "deployments" / "gpu-example.yaml"
LOCAL = PROJECT_ROOT / "deployments" / "local.yaml"


def _views(path) -> list[ProfileView]:
    catalog = load_catalog(path)
    return catalog_views(catalog, {p.name: LiveState(replicas_running=1) for p in catalog.profiles})


@pytest.fixture(scope="session")
def gpu_views() -> list[ProfileView]:
    return _views(GPU)


@pytest.fixture(scope="session")
def local_views() -> list[ProfileView]:
    return _views(LOCAL)
