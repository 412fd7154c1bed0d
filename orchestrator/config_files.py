"""Load YAML config files with source lines, and report schema errors as `file:line: field: reason`.

Invariants: every error produced here names the file, a 1-based line (the closest YAML node
that exists for the failing field) and a dotted field path, so an SRE can jump straight to it;
a key written twice in one mapping is an error (YAML itself keeps the last in silence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a config file."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.reason}"


class ConfigError(ValueError):
    """A config file failed to load or validate; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True)
class LoadedYaml:
    """A parsed YAML document and the 1-based line of every mapping key / sequence item."""

    file: str
    data: Any
    lines: dict[PathKey, int]

    def line_of(self, loc: Sequence[str | int]) -> int:
        """Line of the deepest existing node on `loc` (1 when nothing matches)."""
        key: PathKey = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)


def _index_lines(
    node: yaml.Node, path: PathKey, out: dict[PathKey, int], dupes: list[tuple[PathKey, int, int]]
) -> None:
    """Record the line of every key and item; a key written twice in one mapping goes to
    `dupes` as (path, line of the repeat, line of the first) - YAML would keep the last."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first and key != "<<":
                dupes.append((path + (key,), line, first[key]))
            first.setdefault(key, line)
            out[path + (key,)] = line
            _index_lines(value_node, path + (key,), out, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _index_lines(item, path + (i,), out, dupes)


def parse_yaml_text(text: str, file: str) -> LoadedYaml:
    """Parse one YAML document; raise ConfigError (with the line) on a syntax error."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(file, line, "<yaml>", f"invalid YAML: {reason}")]) from exc
    lines: dict[PathKey, int] = {}
    dupes: list[tuple[PathKey, int, int]] = []
    if node is not None:
        _index_lines(node, (), lines, dupes)
    if dupes:
        raise ConfigError(
            [
                ConfigIssue(
                    file,
                    line,
                    _field_name(path),
                    f"duplicate key (first written on line {first}); YAML would keep only "
                    "the last one: merge the two into one",
                )
                for path, line, first in dupes
            ]
        )
    return LoadedYaml(file=file, data=data, lines=lines)


def load_yaml_file(path: str | Path) -> LoadedYaml:
    """Read and parse a YAML file; a missing or unreadable file is a ConfigError too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(str(p), 1, "<file>", f"cannot read: {exc.strerror}")]
        ) from exc
    return parse_yaml_text(text, str(p))


def _field_name(loc: Sequence[str | int]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "<root>"


def _data_loc(loc: Sequence[str | int], data: Any) -> list[str | int]:
    """Drop pydantic's union/tag segments that are not keys of the YAML data."""
    out: list[str | int] = []
    cursor = data
    for part in loc:
        if (
            isinstance(cursor, dict)
            and part in cursor
            or isinstance(cursor, list)
            and isinstance(part, int)
            and 0 <= part < len(cursor)
        ):
            cursor = cursor[part]
            out.append(part)
        elif (
            isinstance(cursor, dict | list)
            and isinstance(part, str)
            and not _looks_like_tag(part, cursor)
        ):
            # a missing key or extra field: name it, it has no node of its own
            out.append(part)
            cursor = None
        # else: pydantic-internal segment (function-after, tagged union) - skip
    return out


def _looks_like_tag(part: str, cursor: Any) -> bool:
    """True for pydantic's own loc segments: validator wrappers and union tags (a tag equals
    the discriminator value found in the data, e.g. `method: eagle3`)."""
    if not isinstance(cursor, dict):
        return False
    tag_values = {v for v in cursor.values() if isinstance(v, str)}
    return (
        part.startswith("function-")
        or "[" in part
        or part in {"str", "int", "float", "bool", "dict", "list"}
        or part in tag_values
    )


def issues_from_validation(exc: ValidationError, loaded: LoadedYaml) -> list[ConfigIssue]:
    """Turn a pydantic ValidationError into located issues, one per error."""
    issues = []
    for err in exc.errors(include_url=False):
        loc = _data_loc(err["loc"], loaded.data)
        line = loaded.line_of(loc)
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown field (not allowed here)"
        issues.append(ConfigIssue(loaded.file, line, _field_name(loc), reason))
    return issues


def validate_loaded(model: type[ModelT], loaded: LoadedYaml) -> ModelT:
    """Validate parsed YAML against `model`; raise ConfigError naming file, line and field."""
    if not isinstance(loaded.data, dict):
        raise ConfigError(
            [ConfigIssue(loaded.file, 1, "<root>", "expected a YAML mapping at the top level")]
        )
    try:
        return model.model_validate(loaded.data)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(exc, loaded)) from exc


def load_model_file(model: type[ModelT], path: str | Path) -> ModelT:
    """Load a YAML file and validate it against `model` (ConfigError on any problem)."""
    return validate_loaded(model, load_yaml_file(path))
