"""Fixtures for the scheduling tests (helpers live in scheduling_helpers.py)."""

from __future__ import annotations

import pytest
from scheduling_helpers import Clock

from orchestrator.catalog import Catalog, load_catalog
from orchestrator.paths import PROJECT_ROOT


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def local_catalog() -> Catalog:
    return load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")
