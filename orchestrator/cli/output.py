"""Where a command's text output goes: a file (`-o`) or stdout."""

from __future__ import annotations

import sys
from pathlib import Path


def write_output(text: str, path: str | Path | None) -> None:
    if path:
        Path(path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
