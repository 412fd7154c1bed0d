"""`orchestrator predictor train|eval` and `orchestrator predict`: the token-budget predictor."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator import paths
from orchestrator.cli.output import check_output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    pred = subparsers.add_parser("predictor", help="train or evaluate the token-budget predictor")
    sub = pred.add_subparsers(dest="predictor_command", metavar="ACTION", required=True)

    train = sub.add_parser("train", help="rebuild the predictor artifact from the shared data")
    train.add_argument("--data", type=Path, default=paths.SHARED_DATA, help="shared data folder")
    train.add_argument(
        "--from-traffic",
        action="store_true",
        help="refit from offline data plus the traffic recorded by the server",
    )
    train.add_argument("--out", type=Path, help="artifact folder to write")
    train.add_argument(
        "--unlabelled",
        type=Path,
        metavar="FILE",
        help="with --from-traffic: the deployment's prompts (JSONL chat bodies, or learn "
        "lines); the shared rows are reweighted toward them (no answers needed)",
    )
    train.add_argument("--heldout-out", type=Path, help="write the held-out split as JSONL")
    train.add_argument("--all-data", action="store_true", help="no held-out split")
    train.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    train.add_argument("--seed", type=int, default=7)
    train.add_argument(
        "--leave-out",
        action="append",
        default=[],
        metavar="SOURCE",
        help="train without this source of the shared data (repeatable; needs --out): an "
        "artifact to evaluate or simulate on that source honestly (skips the LOSO table)",
    )
    train.add_argument(
        "--no-loso",
        action="store_true",
        help="skip the leave-one-source-out evaluation (the headline; a few minutes)",
    )
    train.set_defaults(func=_train)

    learn = sub.add_parser(
        "learn",
        help="fold labelled requests into the predictor (calibration at once; --refit: model)",
    )
    learn.add_argument(
        "--data",
        type=Path,
        help='lines {"request": <chat body>, "output_tokens": N} (optional "profile")',
    )
    learn.add_argument(
        "--profile",
        help="profile the lines were served by (default: the 'default' calibration, used by "
        "predictions that name no profile and by profiles with none of their own)",
    )
    learn.add_argument(
        "--refit",
        action="store_true",
        help="then refit the model from all recorded traffic (a few minutes; a running "
        "server loads the refit on its next refresh)",
    )
    learn.add_argument(
        "--unlabelled",
        type=Path,
        metavar="FILE",
        help="with --refit: the deployment's prompts (JSONL chat bodies, or learn lines; "
        "may be --data itself); the refit weighs the shared rows toward them (no answers needed)",
    )
    learn.add_argument("--shared", type=Path, default=paths.SHARED_DATA, help="shared data folder")
    learn.set_defaults(func=_learn)

    ev = sub.add_parser("eval", help="metrics of the predictor and the baselines on a JSONL file")
    ev.add_argument("--data", type=Path, help='lines {"request": .., "output_tokens": N}')
    ev.add_argument(
        "--loso",
        action="store_true",
        help="leave-one-source-out on the shared data (the headline; a few minutes)",
    )
    ev.add_argument(
        "--curve",
        action="store_true",
        help="with --loso: learning curve after 0/100/300/1000 labelled rows of each source",
    )
    ev.add_argument(
        "--toward-left-out",
        action="store_true",
        help="with --loso: weight the training rows toward each left-out source's prompts "
        "(its unlabelled traffic; what learn --refit --unlabelled does for a deployment)",
    )
    ev.add_argument("--shared", type=Path, default=paths.SHARED_DATA, help="shared data folder")
    ev.add_argument("--artifact", type=Path, help="artifact folder (default: the active one)")
    ev.add_argument(
        "--ignore-profile", action="store_true", help="ignore per-line profiles (no calibration)"
    )
    ev.add_argument(
        "--online",
        action="store_true",
        help="learn each profile's calibration from the lines before it (prequential)",
    )
    ev.add_argument("--json", action="store_true", help="print metrics as JSON")
    ev.set_defaults(func=_eval)

    pr = subparsers.add_parser(
        "predict",
        help="predict token budgets for OpenAI chat bodies",
        description=(
            "Predict, for each OpenAI chat-completions body in a JSONL file, what the router "
            "would: output-token quantiles (p50/p90), the reasoning probability and the "
            "request class, with the shipped predictor artifact. One JSON line out per line "
            'in; a line that cannot be read gets an {"error": ...} line (exit 1).'
        ),
    )
    pr.add_argument("--input", type=Path, required=True, help="JSONL, one request body per line")
    pr.add_argument(
        "--profile", help="predict for this catalog profile (its tokenizer and calibration)"
    )
    pr.add_argument(
        "--deployments",
        type=Path,
        default=paths.DEFAULT_DEPLOYMENTS,
        help="catalog holding --profile (default: the embedded local catalog)",
    )
    pr.add_argument("--output", type=Path, help="write here instead of stdout")
    pr.set_defaults(func=_predict)


def _err(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _print_loso(result: dict[str, Any]) -> None:
    from orchestrator.predict.offline.loso import format_loso

    print(format_loso(result))


def _run_loso(root: Path, seed: int, curve: bool, toward_left_out: bool = False) -> dict[str, Any]:
    """The leave-one-source-out result, cached by data, feature code and configuration
    (`predictor train` reuses what `predictor eval --loso` computed). `toward_left_out`: the
    training rows weighted toward each left-out source's prompts (`importance.py`)."""
    import hashlib
    import pickle

    from orchestrator.predict.offline.fit import TrainConfig
    from orchestrator.predict.offline.importance import ImportanceConfig
    from orchestrator.predict.offline.loso import CURVE, LosoConfig, loso
    from orchestrator.predict.offline.table import cached_table, table_cache_key

    cfg = LosoConfig(
        train=TrainConfig(seed=seed),
        curve=CURVE if curve else (),
        importance=ImportanceConfig() if toward_left_out else None,
    )
    weighted = f":{cfg.importance!r}" if cfg.importance is not None else ""
    key = hashlib.sha256(f"{table_cache_key(root)}:{cfg!r}{weighted}".encode()).hexdigest()[:16]
    folder = paths.cache_dir() / "predictor"
    cached = [folder / f"loso-{key}.pkl"]
    if not curve:  # a run with the curve holds the same per-source figures
        with_curve = LosoConfig(train=cfg.train, curve=CURVE, importance=cfg.importance)
        k2 = hashlib.sha256(
            f"{table_cache_key(root)}:{with_curve!r}{weighted}".encode()
        ).hexdigest()[:16]
        cached.append(folder / f"loso-{k2}.pkl")
    for path in cached:
        if path.is_file():
            print(f"leave-one-source-out: cached result {path}", file=sys.stderr)
            with path.open("rb") as fh:
                return pickle.load(fh)
    print(
        "leave-one-source-out: each source scored by a model fitted on the others",
        file=sys.stderr,
    )
    result = loso(
        cached_table(root), cfg, progress=lambda line: print(line, file=sys.stderr, flush=True)
    )
    folder.mkdir(parents=True, exist_ok=True)
    with cached[0].open("wb") as fh:
        pickle.dump(result, fh)
    return result


def _train(args: argparse.Namespace) -> int:
    from orchestrator.predict.artifact import DEFAULT_ARTIFACT_DIR
    from orchestrator.predict.offline.data import SOURCES, data_available
    from orchestrator.predict.offline.evaluate import format_table
    from orchestrator.predict.offline.loso import loso_summary
    from orchestrator.predict.offline.table import cached_table
    from orchestrator.predict.offline.train import TrainConfig, train, write_heldout
    from orchestrator.predict.store import PredictorStore

    if args.leave_out:
        unknown = sorted(set(args.leave_out) - set(SOURCES))
        if unknown:
            return _err(f"--leave-out {', '.join(unknown)}: not a source ({', '.join(SOURCES)})")
        if args.out is None:
            return _err("--leave-out needs --out (it must not replace the shipped artifact)")
        if args.from_traffic:
            return _err("--leave-out trains on the shared data only (not with --from-traffic)")
    if args.unlabelled is not None and not args.from_traffic:
        return _err("--unlabelled reweights a refit for a deployment: give --from-traffic")
    if not data_available(args.data):
        return _err(f"shared training data not found under {args.data}")
    # refused before minutes of training (their parents are created)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        return _err(f"--out {args.out}: exists and is not a directory (the artifact is a folder)")
    if args.heldout_out is not None and args.heldout_out.is_dir():
        return _err(f"--heldout-out {args.heldout_out}: is a directory (give a file name)")
    cfg = TrainConfig(seed=args.seed, all_data=args.all_data)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if args.leave_out:
        extra["left_out_sources"] = sorted(set(args.leave_out))
    loso_result = None
    if not args.no_loso and not args.leave_out:
        loso_result = _run_loso(args.data, args.seed, curve=False)
        extra["loso"] = loso_summary(loso_result)
    if args.from_traffic:
        from orchestrator.predict.offline.learn import refit_from_traffic

        unlabelled = _read_unlabelled(args.unlabelled)
        if unlabelled is None:
            return 2
        _, result = refit_from_traffic(
            args.data,
            PredictorStore(),
            cfg,
            out=args.out,
            progress=_progress,
            extra_meta=extra,
            evaluate_heldout=not args.no_eval,
            unlabelled=unlabelled,
        )
    else:
        table = cached_table(args.data)
        if args.leave_out:
            table = table.without_sources(args.leave_out)
        result = train(
            cfg,
            table=table,
            evaluate_heldout=not args.no_eval,
            extra_meta=extra,
            progress=_progress,
        )
        out = args.out or DEFAULT_ARTIFACT_DIR
        result.artifact.save(out)
        print(f"artifact written to {out} ({time.perf_counter() - started:.0f} s)")
    if args.heldout_out:
        write_heldout(result.heldout, result.sources, args.heldout_out)
        print(f"held-out split ({len(result.heldout)} lines) written to {args.heldout_out}")
    if loso_result is not None:
        print()
        _print_loso(loso_result)
    for mode in ("profile_aware", "profile_agnostic", "online_calibration"):
        if mode in result.metrics:
            print(f"\nin-distribution held-out prompts, {mode.replace('_', ' ')}:")
            print(format_table(result.metrics[mode]))
    if "reasoning_auc" in result.metrics:
        print(f"\nreasoning classifier AUC (weak labels): {result.metrics['reasoning_auc']:.3f}")
    return 0


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _read_unlabelled(path: Path | None, predictor: Any = None) -> list[Any] | None:
    """The featurized prompts of `--unlabelled` ([] when not given); None after printing
    every bad line (the command then exits 2)."""
    from orchestrator.predict.offline.learn import LearnInputError, read_unlabelled
    from orchestrator.predict.predictor import Predictor

    if path is None:
        return []
    try:
        return read_unlabelled(predictor or Predictor.default(), path)
    except LearnInputError as exc:
        for line in exc.errors:
            print(f"error: {path}: {line}", file=sys.stderr)
        print("error: --unlabelled: nothing refitted", file=sys.stderr)
        return None


def _learn(args: argparse.Namespace) -> int:
    from orchestrator.predict.offline.data import data_available
    from orchestrator.predict.offline.learn import LearnInputError, learn_file, refit_from_traffic
    from orchestrator.predict.predictor import DEFAULT_CALIBRATION, Predictor

    if args.unlabelled is not None and not args.refit:
        return _err("--unlabelled weighs the refit toward the deployment's prompts: add --refit")
    if args.data is None and not args.refit:
        return _err("give --data FILE (labelled lines) and/or --refit")
    if args.refit and not data_available(args.shared):
        return _err(f"--refit needs the shared training data, not found under {args.shared}")
    predictor = Predictor.default()
    unlabelled = _read_unlabelled(args.unlabelled, predictor)  # whole, before anything is written
    if unlabelled is None:
        return 2
    if args.data is not None:
        try:
            report = learn_file(predictor, args.data, args.profile)
        except LearnInputError as exc:
            for line in exc.errors:
                print(f"error: {args.data}: {line}", file=sys.stderr)
            print("error: nothing learned (the file is taken whole or not at all)", file=sys.stderr)
            return 2
        cfg = predictor.calibration_config
        store = predictor.store.path if predictor.store is not None else "memory"
        print(f"learned {report.lines} labelled requests into {store}")
        for name, count in report.profiles.items():
            b, a = report.before[name], report.after[name]
            print(
                f"  {name}: {count} lines; length factor x{math.exp(b.log_offset(cfg)):.2f} -> "
                f"x{math.exp(a.log_offset(cfg)):.2f}, p90 shift {b.p90_shift:+.3f} -> "
                f"{a.p90_shift:+.3f} (conformal on these lines; {a.observations} observations)"
            )
        if DEFAULT_CALIBRATION in report.profiles:
            print(
                f"  '{DEFAULT_CALIBRATION}' applies to predictions that name no profile and to "
                "profiles with no calibration of their own"
            )
    if not args.refit:
        print("refit the model with them: orchestrator predictor learn --refit")
        return 0
    if predictor.store is None:
        return _err("--refit needs the predictor's traffic store")
    print("refitting from the shared data and the recorded traffic:", flush=True)
    if unlabelled:
        print(f"  the shared rows weighted toward {len(unlabelled)} unlabelled prompts")
    refit, _ = refit_from_traffic(
        args.shared, predictor.store, progress=_progress, unlabelled=unlabelled
    )
    predictor.refresh()  # this process's predictor follows the refit at once
    print(
        f"refit from {refit.traffic_records} traffic records written to {refit.artifact_dir} "
        f"({refit.seconds:.0f} s); calibrations replayed: {refit.replayed}; servers load it "
        f"within {predictor.refresh_seconds:.0f} s"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from orchestrator.predict.offline.evaluate import evaluate, format_table, read_eval_file
    from orchestrator.predict.predictor import Predictor

    if args.loso:
        from orchestrator.predict.offline.data import data_available

        if not data_available(args.shared):
            return _err(f"shared data not found under {args.shared}")
        result = _run_loso(args.shared, 7, args.curve, args.toward_left_out)
        if args.json:
            print(json.dumps(result, indent=1, sort_keys=True))
        else:
            _print_loso(result)
        if args.data is None:
            return 0
    if args.data is None:
        return _err("give --data FILE and/or --loso")
    try:
        lines = read_eval_file(args.data)
    except (OSError, ValueError) as exc:
        return _err(str(exc))
    if not lines:
        return _err(f"{args.data}: no lines")
    predictor = Predictor(args.artifact, store=None)
    result = evaluate(lines, predictor, use_profile=not args.ignore_profile, online=args.online)
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        print(f"{result['lines']} lines ({result['skipped']} skipped as invalid requests)")
        print(format_table(result))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from orchestrator.catalog import load_catalog
    from orchestrator.config_files import ConfigError
    from orchestrator.predict.predictor import Predictor
    from orchestrator.predict.request import PredictorInputError

    profile = None
    if args.profile:
        try:
            profile = load_catalog(args.deployments).profile(args.profile)
        except ConfigError as exc:
            return _err(str(exc))
        except KeyError:
            return _err(f"no profile {args.profile!r} in {args.deployments}")
    try:
        source = args.input.open(encoding="utf-8")
    except OSError as exc:
        return _err(str(exc))
    check_output_file(args.output, "--output")
    predictor = Predictor.default()
    sink = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    failures = lines = 0
    try:
        with source:
            for number, raw in enumerate(source, start=1):
                if not raw.strip():
                    continue
                lines += 1
                try:
                    body = json.loads(raw)
                    if isinstance(body, dict) and isinstance(body.get("request"), dict):
                        body = body["request"]  # also accept eval-format lines
                    line = predictor.predict(body, profile).public()
                except (json.JSONDecodeError, PredictorInputError) as exc:
                    failures += 1
                    line = {"error": f"line {number}: {exc}"}
                sink.write(json.dumps(line) + "\n")
    finally:
        if args.output:
            sink.close()
    if not lines:
        return _err(f"{args.input}: holds no request (one JSON body per line)")
    if failures:
        print(f"{failures} of {lines} line(s) could not be predicted", file=sys.stderr)
    return 1 if failures else 0
