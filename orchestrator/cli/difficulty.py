"""`orchestrator difficulty train|eval`: the model of which quality tier answers a request well."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from orchestrator import paths


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser(
        "difficulty", help="train or evaluate the difficulty model (tier_success)"
    )
    sub = cmd.add_subparsers(dest="difficulty_command", metavar="ACTION", required=True)
    for name, helptext in (
        ("eval", "AUC, calibration and strong-call share per left-out MMLU subject and source"),
        ("train", "evaluate, then rebuild the difficulty artifact from the shared data"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--data", type=Path, default=paths.SHARED_DATA, help="shared data folder")
        p.add_argument("--json", type=Path, help="also write the full report as JSON")
        p.set_defaults(func=_run, action=name)
        if name == "train":
            p.add_argument("--out", type=Path, help="artifact folder (default: the shipped one)")


def _run(args: argparse.Namespace) -> int:
    from orchestrator.predict.difficulty import DEFAULT_DIFFICULTY_DIR
    from orchestrator.predict.offline import difficulty_eval, difficulty_fit
    from orchestrator.predict.offline.difficulty_data import outcomes_available

    if not outcomes_available(args.data):
        print(f"no RouteLLM outcomes under {args.data}/routellm")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.action == "train":
        rep = difficulty_fit.train(args.out or DEFAULT_DIFFICULTY_DIR, args.data)
    else:
        rep = difficulty_fit.evaluate(args.data)[3]
    print(difficulty_eval.render(rep))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n")
    return 0
