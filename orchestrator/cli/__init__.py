"""The `orchestrator` command. Each sub-command lives in its own module with a `register()`."""

from __future__ import annotations

import argparse
import importlib
import sys

# module name -> registers one or more sub-commands on the top-level parser
_COMMAND_MODULES = (
    "serve",
    "policy",
    "predictor",
    "difficulty",
    "render",
    "usage",
    "simulate",
    "plan",
    "status",
    "profile",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Cost- and SLO-aware LLM serving on Ray Serve and vLLM.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"orchestrator.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"orchestrator.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
