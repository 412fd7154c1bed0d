"""Where a command's output goes (a file given with `-o` or stdout), and the one-line error
every command prints instead of a traceback when a path is unusable."""

from __future__ import annotations

import sys
from pathlib import Path

USAGE_ERROR = 2  # exit code of a bad path, an unreadable or malformed input


class CliError(Exception):
    """A user error a command reports in one line (exit code 2), never as a traceback."""


def check_output_file(path: str | Path | None, option: str) -> None:
    """Refuse, before any work, an output file whose directory is missing or that is a
    directory (an existing file is overwritten)."""
    if not path:
        return
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{option} {p}: is a directory (give a file name)")
    parent = p.parent
    if not parent.is_dir():
        raise CliError(f"{option} {p}: directory {parent} does not exist")


def check_output_dir(path: str | Path | None, option: str) -> None:
    """Refuse, before any work, an output folder that is an existing file or whose parent
    is missing (the folder itself is created)."""
    if not path:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CliError(f"{option} {p}: exists and is not a directory (give a folder)")
    if not p.exists() and not p.parent.is_dir():
        raise CliError(f"{option} {p}: directory {p.parent} does not exist")


def write_output(text: str, path: str | Path | None, option: str = "--output") -> None:
    """Write `text` to `path`, or to stdout when no path is given."""
    if path:
        check_output_file(path, option)
        Path(path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
