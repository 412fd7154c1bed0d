"""`orchestrator simulate`: replay a trace against the catalog under ours, the oracle and the
baselines, in virtual time (no Ray, no engine). Exit codes: 0 ok, 2 bad input."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="replay a trace on a simulated cluster: ours vs baselines vs oracle",
        description="Discrete-event simulation of the catalog's replicas under each policy, "
        "with the product's own predictor, router and controller (docs/benchmark.md).",
    )
    p.add_argument(
        "--trace",
        required=True,
        help="Azure trace CSV, JSONL of requests, a Mooncake trace (JSONL with timestamp, "
        "input_length, output_length, hash_ids), a usage ledger (SQLite), or a decision log "
        "(a SQLite file holding one, or a postgresql:// URL)",
    )
    p.add_argument("--deployments", default=str(DEFAULT_DEPLOYMENTS), help="profile catalog file")
    p.add_argument("--policy", default=str(DEFAULT_POLICY), help="policy file")
    p.add_argument(
        "--baselines",
        default="all",
        help="comma-separated baselines besides ours and the oracle "
        "(static,queue,round-robin,routellm,dynamo, and each at the policy's quality floors: "
        "static-floor,...), 'all' or 'none'",
    )
    p.add_argument(
        "--speed",
        default=None,
        help="the replicas' real throughput against the catalog's figures: X for every "
        "profile or NAME=X,... per profile (e.g. 0.5 = half as fast; router and planner keep "
        "the figures)",
    )
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply the arrival rate")
    p.add_argument(
        "--fixed-limits",
        action="store_true",
        help="with --rate-scale > 1, keep replica maxima, cost ceiling and budgets as written "
        "(default: multiplied by the rate scale)",
    )
    p.add_argument("--duration", type=float, default=None, help="replay only the first S seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="simulate the first S seconds without measuring or billing them",
    )
    p.add_argument(
        "--calibrate",
        type=float,
        default=0.0,
        help="the first S seconds only teach the predictor their true lengths (a warm start "
        "from traffic outside the measured window); the rest is replayed and measured",
    )
    p.add_argument(
        "--tenants",
        default=None,
        help="traffic share per tenant, e.g. 'premium=0.3,free=0.7' (default uniform)",
    )
    p.add_argument(
        "--queue-timeout",
        type=float,
        default=600.0,
        help="seconds a request may wait for a replica before it is dropped",
    )
    p.add_argument(
        "--prediction",
        choices=("model", "constant", "truth"),
        default="model",
        help="what ours is fed: the product's predictor, one constant prediction (the "
        "median) for every request, or the true lengths",
    )
    p.add_argument(
        "--predictor-artifact",
        default=None,
        help="predictor artifact folder ours reads (default: the active one); e.g. one "
        "trained without the trace's source (`orchestrator predictor train --leave-out`)",
    )
    p.add_argument(
        "--no-scheduler",
        action="store_true",
        help="ours and the oracle wait in FIFO queues (Serve's and vLLM's defaults) instead "
        "of the product's scheduler",
    )
    p.add_argument("--report", default=None, help="write report.md, result.json and PNGs here")
    p.add_argument("--json", action="store_true", help="print the result as JSON (quiet)")
    p.set_defaults(func=run)


def _policies(text: str) -> list[str]:
    from orchestrator.simulate import BASELINES

    if text == "all":
        chosen = list(BASELINES)
    elif text in ("", "none"):
        chosen = []
    else:
        chosen = [b.strip() for b in text.split(",") if b.strip()]
        bad = [b for b in chosen if b not in BASELINES]
        if bad:
            raise ValueError(
                f"unknown baseline(s) {', '.join(bad)}; choose from {', '.join(BASELINES)}"
            )
    return ["ours", "oracle", "ours-constant", *chosen]


def _speed(text: str | None) -> float | dict[str, float]:
    """--speed: one factor, or NAME=FACTOR pairs (each > 0)."""
    if not text:
        return 1.0
    if "=" not in text:
        pairs = {"": text}
    else:
        pairs = dict(part.partition("=")[::2] for part in text.split(","))
    out = {}
    for name, value in pairs.items():
        try:
            factor = float(value)
        except ValueError:
            raise ValueError(f"--speed: expected X or NAME=X,..., got {text!r}") from None
        if not factor > 0:
            raise ValueError(f"--speed: factors must be > 0, got {value!r}")
        out[name.strip()] = factor
    return out.get("", out)


def _weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--tenants: expected NAME=SHARE, got {part!r}") from None
        if out[name.strip()] < 0:
            raise ValueError(f"--tenants: share of {name!r} must be >= 0")
    if sum(out.values()) <= 0:
        raise ValueError("--tenants: shares must add up to more than 0")
    return out


def _predictor(folder: str | None) -> Any:
    """The predictor read from `folder` (no calibration store: the run learns online from
    its own traffic), or None (the active artifact)."""
    if folder is None:
        return None
    from pathlib import Path

    from orchestrator.predict.artifact import ArtifactError
    from orchestrator.predict.predictor import Predictor

    if not Path(folder).is_dir():
        raise ValueError(f"--predictor-artifact {folder}: not a folder")
    try:
        return Predictor(folder, store=None)
    except (ArtifactError, OSError) as exc:
        raise ValueError(
            f"--predictor-artifact {folder}: not a predictor artifact ({exc})"
        ) from None


class _Bar:
    """A rich progress bar on a terminal; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.progress = None
        self.tasks: dict[str, Any] = {}
        if enabled:
            from rich.progress import Progress

            self.progress = Progress(transient=False)
            self.progress.start()

    def __call__(self, name: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(f"{name:<12}", total=total)
        self.progress.update(self.tasks[name], completed=done)

    def stop(self) -> None:
        if self.progress is not None:
            for task in self.tasks.values():
                self.progress.update(task, completed=self.progress.tasks[task].total)
            self.progress.stop()


def run(args: argparse.Namespace) -> int:
    from orchestrator.catalog import load_catalog
    from orchestrator.cli.output import CliError, check_output_dir
    from orchestrator.config_files import ConfigError
    from orchestrator.policy import load_policy
    from orchestrator.simulate import load_traffic, rescale, simulate
    from orchestrator.simulate.prompts import PromptDataMissing

    def fail(msg: str) -> int:
        print(f"orchestrator simulate: {msg}", file=sys.stderr)
        return 2

    try:
        policies = _policies(args.baselines)
        weights = _weights(args.tenants)
        speed = _speed(args.speed)
        if args.rate_scale <= 0:
            raise ValueError("--rate-scale must be > 0")
        if args.duration is not None and args.duration <= 0:
            raise ValueError("--duration must be > 0")
        if args.warmup < 0 or (args.duration is not None and args.warmup >= args.duration):
            raise ValueError("--warmup must be >= 0 and shorter than --duration")
        if args.calibrate < 0 or (args.duration is not None and args.calibrate >= args.duration):
            raise ValueError("--calibrate must be >= 0 and shorter than --duration")
        check_output_dir(args.report, "--report")
        catalog = load_catalog(args.deployments)
        policy = load_policy(args.policy, catalog, resolve_secrets=False)
        unknown = (
            sorted(set(speed) - {p.name for p in catalog.profiles})
            if isinstance(speed, dict)
            else []
        )
        if unknown:
            raise ValueError(f"--speed: no profile {', '.join(unknown)} in the catalog")
        predictor = _predictor(args.predictor_artifact)
        requests = load_traffic(args.trace, seed=args.seed)
    except (ValueError, ConfigError, OSError, PromptDataMissing, CliError) as exc:
        return fail(str(exc))
    requests = rescale(
        requests, rate_scale=args.rate_scale, duration_s=args.duration, seed=args.seed
    )
    if not requests:
        return fail("the trace holds no request in the chosen window")
    scaled = args.rate_scale > 1 and not args.fixed_limits
    if scaled:
        from orchestrator.simulate.limits import scale_limits

        catalog, policy = scale_limits(catalog, policy, args.rate_scale)
    bar = _Bar(enabled=not args.json and sys.stderr.isatty())
    try:
        result = simulate(
            catalog,
            policy,
            requests,
            policies=policies,
            seed=args.seed,
            tenant_weights=weights,
            progress=bar,
            queue_timeout_s=args.queue_timeout,
            warmup_s=args.warmup,
            calibrate_s=args.calibrate,
            prediction=args.prediction,
            scheduler=not args.no_scheduler,
            speed=speed,
            predictor=predictor,
        )
    except ValueError as exc:
        return fail(str(exc))
    finally:
        bar.stop()
    if scaled:
        result.notes.append(
            f"replica maxima, cost ceiling and budgets x{args.rate_scale:g} with the rate"
        )
    if args.report:
        from orchestrator.simulate.report import write_report

        files = write_report(result, args.report)
        if not args.json:
            print(f"report: {', '.join(str(f) for f in files)}", file=sys.stderr)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from orchestrator.simulate.report import markdown_table

        sys.stdout.write(markdown_table(result))
        for note in result.notes:
            print(f"- {note}")
    return 0
