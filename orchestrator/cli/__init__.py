"""The `orchestrator` command. Each sub-command lives in its own module with a `register()`."""

from __future__ import annotations

import argparse
import importlib
import sys

import yaml

from orchestrator.cli.output import USAGE_ERROR, CliError
from orchestrator.config_files import ConfigError

# module name -> registers one or more sub-commands on the top-level parser
_COMMAND_MODULES = (
    "serve",
    "policy",
    "predictor",
    "difficulty",
    "render",
    "usage",
    "simulate",
    "scaling_plan",  # `orchestrator plan`
    "status",
    "profile",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Cost- and SLO-aware LLM serving on Ray Serve and vLLM.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:  # a module that fails to import is a packaging bug: raise
        importlib.import_module(f"orchestrator.cli.{name}").register(sub)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """A command registered without a description shows its one-line help in `--help`."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, child in action.choices.items():
            if not child.description and helps.get(name):
                text = str(helps[name])
                child.description = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
            _describe(child)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into `head` and friends: not an error
        sys.stderr.close()
        return 0
    except ConfigError as exc:  # located problems: one `file:line: field: reason` line each
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return USAGE_ERROR
    except (CliError, OSError, ValueError, yaml.YAMLError) as exc:
        # the last line of defence: a bad path or input file is one line, never a traceback
        print(f"{_command_name(args)}: error: {_one_line(exc)}", file=sys.stderr)
        return USAGE_ERROR


def _command_name(args: argparse.Namespace) -> str:
    words = [getattr(args, "command", None)]
    words += [v for k, v in vars(args).items() if k.endswith("_command") and k != "command"]
    return " ".join(["orchestrator", *(str(w) for w in words if w)])


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).strip() or type(exc).__name__
    lines = text.splitlines()
    return lines[0] + (f" (and {len(lines) - 1} more line(s))" if len(lines) > 1 else "")


if __name__ == "__main__":
    sys.exit(main())
