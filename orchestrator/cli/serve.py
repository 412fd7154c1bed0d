"""`orchestrator serve`: start (or join) Ray, deploy the app, serve until SIGTERM / Ctrl-C.

Invariant: on SIGTERM or SIGINT everything this command started (Serve app, engines, the local
Ray cluster) is shut down before it exits; a joined cluster (`--address` / `RAY_ADDRESS`) is
left running, only our application is deleted from it.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
from typing import Any

from pydantic import ValidationError

from orchestrator.config_files import ConfigError
from orchestrator.control.ingress_scaling import INGRESS_TARGET_ONGOING_REQUESTS, IngressScaling
from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY, state_dir
from orchestrator.serving.storage_target import (
    DATABASE_URL_ENV,
    check_ingress_replicas,
    resolve_target,
)
from orchestrator.storage.target import backend, redact


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the OpenAI-compatible endpoint on Ray Serve + vLLM")
    p.add_argument("--deployments", default=str(DEFAULT_DEPLOYMENTS), help="profile catalog file")
    p.add_argument("--policy", default=str(DEFAULT_POLICY), help="policy file (hot-reloaded)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--ledger",
        default=None,
        help="usage ledger: a SQLite file path or a postgresql://user:pw@host/db URL (default "
        f"${DATABASE_URL_ENV}, else usage.sqlite3 in the state directory)",
    )
    p.add_argument(
        "--ingress-min-replicas", type=int, default=1, help="ingress replicas Serve always runs"
    )
    p.add_argument(
        "--ingress-max-replicas",
        type=int,
        default=1,
        help="ingress replicas Serve may scale out to by ongoing requests (>1 needs a "
        "postgresql:// ledger)",
    )
    p.add_argument(
        "--ingress-target-ongoing-requests",
        type=float,
        default=INGRESS_TARGET_ONGOING_REQUESTS,
        help="ongoing requests per ingress replica Serve scales towards",
    )
    p.add_argument(
        "--ready-timeout", type=float, default=900.0, help="seconds to wait for all engines"
    )
    p.add_argument(
        "--address",
        default=None,
        help="join this running Ray cluster (host:port of its GCS, or 'auto') instead of "
        "starting one; default $RAY_ADDRESS",
    )
    p.add_argument(
        "--proxy-location",
        choices=("HeadOnly", "EveryNode"),
        default="HeadOnly",
        help="where Serve runs HTTP proxies (EveryNode needs one --port per host)",
    )
    p.add_argument(
        "--ingress-node-label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pin the ingress to nodes carrying this Ray node label (repeatable)",
    )
    p.set_defaults(func=run)


def parse_labels(items: list[str]) -> dict[str, str]:
    """`KEY=VALUE` strings as a dict (ValueError naming the bad item)."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--ingress-node-label {item!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


RAY_WORKER_NICENESS_ENV = "RAY_worker_niceness"


def ray_address(args: argparse.Namespace) -> str | None:
    """The cluster to join: --address, else $RAY_ADDRESS; None = start a local one."""
    return args.address or os.environ.get("RAY_ADDRESS") or None


def _say(msg: str) -> None:
    print(f"[orchestrator] {msg}", file=sys.stderr, flush=True)


def ledger_setting(args: argparse.Namespace) -> str | None:
    """The ledger given to the app: --ledger, else $ORCHESTRATOR_DATABASE_URL of this shell
    (replicas in a joined cluster do not inherit it); None = the replica's default file."""
    return args.ledger or os.environ.get(DATABASE_URL_ENV, "").strip() or None


def ingress_scaling(args: argparse.Namespace) -> IngressScaling:
    """The ingress's replica bounds from the flags, refused (ValueError) when inconsistent or
    when more than one replica would share a SQLite ledger."""
    try:
        scaling = IngressScaling(
            min_replicas=args.ingress_min_replicas,
            max_replicas=args.ingress_max_replicas,
            target_ongoing_requests=args.ingress_target_ongoing_requests,
        )
    except ValidationError as exc:  # name the flag, not the model field
        first = exc.errors()[0]
        loc = "-".join(str(part) for part in first["loc"]).replace("_", "-")
        flag = f"--ingress-{loc}" if loc else "--ingress-min-replicas/--ingress-max-replicas"
        raise ValueError(f"{flag}: {first['msg']}") from None
    check_ingress_replicas(resolve_target(ledger_setting(args)), scaling.max_replicas)
    return scaling


def _validate_inputs(args: argparse.Namespace) -> None:
    from orchestrator.catalog import load_catalog
    from orchestrator.models import resolve_model
    from orchestrator.policy import load_policy

    catalog = load_catalog(args.deployments)
    policy = load_policy(args.policy, catalog)  # the server would refuse it too, but later
    for warning in policy.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for profile in catalog.profiles:  # convert packaged models before Ray starts
        resolve_model(profile.model)


def _wait_until_running(app_name: str, timeout_s: float, stop: threading.Event) -> bool:
    from ray import serve

    deadline = time.monotonic() + timeout_s
    last = ""
    while not stop.is_set() and time.monotonic() < deadline:
        status = serve.status().applications.get(app_name)
        if status is not None:
            deps = ", ".join(f"{n}={d.status}" for n, d in sorted(status.deployments.items()))
            line = f"{status.status}: {deps}"
            if line != last:
                _say(line)
                last = line
            if status.status == "RUNNING":
                return True
            if status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
                for name, dep in status.deployments.items():
                    if dep.message:
                        _say(f"{name}: {dep.message}")
                return False
        stop.wait(2.0)
    return False


def run(args: argparse.Namespace) -> int:
    try:
        _validate_inputs(args)
        ingress_labels = parse_labels(args.ingress_node_label)
        scaling = ingress_scaling(args)
        ledger = ledger_setting(args)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        _say(f"received {signal.Signals(signum).name}, shutting down")
        stop.set()

    import ray
    from ray import serve

    from orchestrator.raycompat.deploy import deploy_nonblocking
    from orchestrator.serving.app import INGRESS_NUM_CPUS, build_app
    from orchestrator.serving.ingress import APP_NAME

    address = ray_address(args)
    joined = address is not None
    _say(f"joining the Ray cluster at {address}" if joined else "starting a local Ray cluster")
    if not joined:
        # Ray runs its workers at nice 15 by default (batch work beside a driver); here the
        # workers ARE the server (ingress, engines), so they run at the caller's priority
        os.environ.setdefault(RAY_WORKER_NICENESS_ENV, "0")
    # a local cluster is this one node: its CPU engines get disjoint cores (build_app), and
    # Ray counts the cores they are bound to plus the ingress replicas' share, which floats
    node_cpus = None if joined else len(os.sched_getaffinity(0))
    ray.init(
        address=address or "local",
        num_cpus=None
        if node_cpus is None
        else node_cpus + math.ceil(INGRESS_NUM_CPUS * scaling.max_replicas),
        include_dashboard=False,
        log_to_driver=True,
        namespace="orchestrator",
    )
    # after ray.init, which installs handlers of its own that would skip our clean shutdown
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    exit_code = 0
    try:
        serve.start(
            proxy_location=args.proxy_location,
            http_options={"host": args.host, "port": args.port},
        )
        # the state directory is resolved here, in the caller's environment: replicas in a
        # joined cluster run in worker processes that `ray start` spawned, without it
        app_args: dict[str, Any] = {
            "deployments": args.deployments,
            "policy": args.policy,
            "state_dir": str(state_dir()),
        }
        if ingress_labels:
            app_args["ingress_node_labels"] = ingress_labels
        if ledger:
            app_args["ledger"] = ledger  # a bind argument: never printed nor in serve status
            _say(f"usage ledger: {redact(ledger)} ({backend(ledger)})")
        if node_cpus is not None:
            app_args["node_cpus"] = node_cpus
        app_args["ingress_min_replicas"] = scaling.min_replicas
        app_args["ingress_max_replicas"] = scaling.max_replicas
        app_args["ingress_target_ongoing_requests"] = scaling.target_ongoing_requests
        # deploy without waiting (serve.run would block, unresponsive to signals, until every
        # engine is up); readiness is polled below with progress messages
        deploy_nonblocking(build_app(app_args), name=APP_NAME, route_prefix="/")
        _say("deploying profiles (first start of a CPU engine takes about a minute)")
        if _wait_until_running(APP_NAME, args.ready_timeout, stop):
            _say(f"ready: OpenAI API at http://{args.host}:{args.port}/v1")
            stop.wait()
        elif not stop.is_set():
            _say("the application did not become ready; see the messages above")
            exit_code = 1
    finally:
        _say("stopping")
        started = _descendants()
        try:
            if joined:
                try:
                    serve.delete(APP_NAME)
                except TimeoutError as exc:  # e.g. a replica that no node can host
                    _say(f"the application is still being deleted from the cluster: {exc}")
            else:
                serve.shutdown()
        finally:
            ray.shutdown()
            if not joined:
                _reap(started)
        _say("stopped")
    return exit_code


def _descendants() -> list[Any]:
    import psutil

    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _reap(processes: list[Any], grace_s: float = 10.0) -> None:
    """Terminate what a local cluster left running (vLLM's engine workers can outlive their
    parent by tens of seconds): SIGTERM, then SIGKILL after `grace_s`."""
    import psutil

    alive = [p for p in processes if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, still = psutil.wait_procs(alive, timeout=grace_s)
    for p in still:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(still, timeout=5)
