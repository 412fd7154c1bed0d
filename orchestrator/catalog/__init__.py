"""Profile catalogs (deployments/*.yaml): schema and loading."""

from orchestrator.catalog.loader import load_catalog
from orchestrator.catalog.schema import Catalog, Profile

__all__ = ["Catalog", "Profile", "load_catalog"]
