"""Write the chart's values.yaml, values.schema.json and values reference from `ChartValues`.

Invariant: each output is a pure function of the model (defaults, descriptions, constraints),
so the files in helm/orchestrator/ are regenerated, never edited, and tests compare them.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel

from orchestrator.deploy.values import ChartValues

_LEAF_MODELS = {"generated"}  # dumped whole: machine-written, no per-field comments


def _inline(value: Any) -> str:
    """One YAML scalar or empty collection, flow style."""
    text = yaml.safe_dump([value], default_flow_style=True, width=10_000).strip()
    return text[1:-1]


def _block(value: Any, indent: int) -> list[str]:
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=100)
    return [" " * indent + line for line in text.rstrip("\n").splitlines()]


def _emit(model: BaseModel, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if info.description:
            lines.append(f"{pad}# {info.description}")
        if isinstance(value, BaseModel) and name not in _LEAF_MODELS:
            lines.append(f"{pad}{name}:")
            lines += _emit(value, indent + 2)
            continue
        data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        if isinstance(data, dict | list) and data:
            lines.append(f"{pad}{name}:")
            lines += _block(data, indent + 2)
        else:
            lines.append(f"{pad}{name}: {_inline(data)}")
    return lines


def values_yaml(values: ChartValues) -> str:
    """values.yaml text: every field with its description as a comment above it."""
    header = [
        "# Values of the orchestrator chart. GENERATED from orchestrator/deploy/values.py by",
        "# `python -m orchestrator.deploy.sync`: edit the model there, not this file.",
        "# Full reference: docs/kubernetes.md. Schema: values.schema.json.",
        "",
    ]
    return "\n".join(header + _emit(values, 0)) + "\n"


def values_schema() -> dict[str, Any]:
    """values.schema.json: the model's JSON Schema (unknown keys and wrong types rejected)."""
    schema = ChartValues.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def values_schema_json() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=False) + "\n"


def _rows(model: BaseModel, prefix: str) -> list[str]:
    rows: list[str] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel) and name not in _LEAF_MODELS:
            rows += _rows(value, key + ".")
            continue
        data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        shown = json.dumps(data, separators=(", ", ": "))
        if len(shown) > 60:
            shown = "see values.yaml"
        desc = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{shown}` | {desc} |")
    return rows


def values_reference() -> str:
    """A Markdown table of every value: key, default, meaning."""
    head = ["| key | default | meaning |", "|---|---|---|"]
    return "\n".join(head + _rows(ChartValues(), "")) + "\n"
