"""Kubernetes deployment: the one generator of the KubeRay RayService and the chart's values.

`orchestrator render` and the Helm chart in helm/orchestrator/ emit the same RayService:
the chart's catalog-derived values (`generated`) and its values.yaml/values.schema.json are
written by this package (`python -m orchestrator.deploy.sync`), and tests/helm compares the
chart's rendered RayService with `render_rayservice` object for object.
"""

from orchestrator.deploy.generate import (
    Inputs,
    chart_values_fragment,
    dump_yaml,
    load_inputs,
    load_values,
    render_rayservice,
)
from orchestrator.deploy.rayservice import build_rayservice, serve_config
from orchestrator.deploy.serve_args import IMPORT_PATH, ServeAppArgs, mounted_args
from orchestrator.deploy.values import ChartValues, GeneratedValues, GeneratedWorkerGroup
from orchestrator.deploy.workers import catalog_sha256, derive_generated

__all__ = [
    "IMPORT_PATH",
    "ChartValues",
    "GeneratedValues",
    "GeneratedWorkerGroup",
    "Inputs",
    "ServeAppArgs",
    "build_rayservice",
    "catalog_sha256",
    "chart_values_fragment",
    "derive_generated",
    "dump_yaml",
    "load_inputs",
    "load_values",
    "mounted_args",
    "render_rayservice",
    "serve_config",
]
