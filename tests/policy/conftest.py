"""Fixtures for policy tests (helpers live in policy_helpers.py)."""

from __future__ import annotations

import pytest
from policy_helpers import GPU_CATALOG, LOCAL_CATALOG

from orchestrator.catalog import Catalog, load_catalog


@pytest.fixture(scope="session")
def gpu_catalog() -> Catalog:
    return load_catalog(GPU_CATALOG)


@pytest.fixture(scope="session")
def local_catalog() -> Catalog:
    return load_catalog(LOCAL_CATALOG)
