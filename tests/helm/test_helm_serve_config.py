"""serveConfigV2: its import path is a real builder and its args parse with the project's schemas."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import yaml
from helm_checks import example_values, one

from orchestrator.catalog import load_catalog
from orchestrator.deploy import IMPORT_PATH, ServeAppArgs
from orchestrator.deploy.serve_args import CATALOG_DIR, CATALOG_FILE, POLICY_DIR, POLICY_FILE


def _serve_config(render, example) -> dict:
    rs = one(render(example_values(example), namespace=example.namespace), "RayService")
    return yaml.safe_load(rs["spec"]["serveConfigV2"])


def _mounted_files(render, example, tmp_path: Path) -> dict[str, Path]:
    """Write the ConfigMaps' files where the pods would see them (under tmp_path)."""
    objs = render(example_values(example), namespace=example.namespace)
    out = {}
    for cm in (o for o in objs if o["kind"] == "ConfigMap"):
        for key, text in cm["data"].items():
            mount = {CATALOG_FILE: CATALOG_DIR, POLICY_FILE: POLICY_DIR}.get(key)
            if mount is None:
                continue
            path = tmp_path / mount.lstrip("/") / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            out[f"{mount}/{key}"] = path
    return out


def test_import_path_resolves_to_a_callable() -> None:
    module_name, _, attr = IMPORT_PATH.partition(":")
    builder = getattr(importlib.import_module(module_name), attr)
    assert callable(builder)


def test_args_parse_with_the_app_builders_own_model(render, example) -> None:
    (app,) = _serve_config(render, example)["applications"]
    assert app["import_path"] == IMPORT_PATH
    ServeAppArgs.model_validate(app["args"])
    from orchestrator.serving.app import AppArgs  # a broken import must fail, not skip

    parsed = AppArgs.model_validate(app["args"])
    assert parsed.deployments == f"{CATALOG_DIR}/{CATALOG_FILE}"
    assert parsed.policy == f"{POLICY_DIR}/{POLICY_FILE}"


def test_referenced_files_parse_with_the_project_schemas(render, example, tmp_path) -> None:
    (app,) = _serve_config(render, example)["applications"]
    files = _mounted_files(render, example, tmp_path)
    catalog = load_catalog(files[app["args"]["deployments"]])
    assert catalog.profiles
    from orchestrator.policy.loader import load_policy

    policy = load_policy(files[app["args"]["policy"]], catalog, resolve_secrets=False)
    assert policy.default_tenant.name


def test_serve_listens_on_the_service_port(render, example) -> None:
    config = _serve_config(render, example)
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000}
