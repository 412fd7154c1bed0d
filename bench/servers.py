"""Starting and stopping the servers a bench measures, and the lines every bench prints first.

A bench starts `orchestrator serve` (`start_serve`, `serve_env`) or another server in the
bench's own session (`SERVER_PROCESS`), waits for it (`wait_ready`, `all_profiles_ready`),
raises its own priority over them (`outrank_servers`) and stops them (`stop`); it says which
machine it ran on and how loaded it was (`bench_workdir`, `load_average`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.catalog import load_catalog  # noqa: E402
from orchestrator.catalog.schema import Profile  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(
    url: str,
    proc: subprocess.Popen,
    ready: Callable[[httpx.Response], bool] = lambda r: True,
    timeout_s: float = 1200,
) -> None:
    """Poll `url` until it answers 200 and `ready(response)` holds; fail if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            r = httpx.get(url, timeout=5)
            if r.status_code == 200 and ready(r):
                return
        except httpx.HTTPError:
            pass
        time.sleep(3)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


# How a benchmark starts the servers it measures: in their own process group (so `stop` can
# signal all of it) but in the load generator's session. A server in its own session is a
# separate CPU-scheduling group on Linux (autogroup), and on this 2-core machine that left the
# load generator runnable but unscheduled for up to 2.2 s at a time (its schedstat wait time):
# multi-second "TTFTs" and lost throughput that were the client's, on either side of a comparison.
SERVER_PROCESS = {"process_group": 0}


def outrank_servers() -> str:
    """Run this load generator at nice -10 (after starting the servers, which keep their
    priority), so its own scheduling does not add to the latencies it measures; returns what
    was done, for the report (an unprivileged user cannot lower nice: stated as such)."""
    try:
        os.nice(-10 - os.nice(0))
        return "load generator at nice -10"
    except OSError:
        return f"load generator at nice {os.nice(0)} (not permitted to raise its priority)"


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (`SERVER_PROCESS`), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def serve_env(**extra: str) -> dict[str, str]:
    """The environment of an `orchestrator serve` a bench starts: this checkout first on
    PYTHONPATH and no RAY_ADDRESS (the server starts a Ray cluster of its own); `extra` on top."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def start_serve(
    log: Path, ledger: Path | str, *flags: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """`orchestrator serve --ledger LEDGER FLAGS...` on a free port, its output in `log`,
    started in the bench's session (`SERVER_PROCESS`) with `env` (default `serve_env()`); the
    process and its base URL. `wait_ready(f"{base}/healthz", proc, all_profiles_ready)` waits
    for it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "serve", "--port", str(port),
         "--ledger", str(ledger), *flags],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=serve_env() if env is None else env,
        **SERVER_PROCESS,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


def run_python(
    code: str, *args: str, log: Path, env: dict[str, str], timeout_s: float = 900
) -> None:
    """Run `code` in a child Python with `args` (e.g. a script deploying an app into the
    server's cluster), its output in `log`; fails if it fails or outlasts `timeout_s`."""
    subprocess.run(
        [sys.executable, "-c", code, *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
        check=True,
        timeout=timeout_s,
    )


def cluster_env(proc: subprocess.Popen, env: dict[str, str]) -> dict[str, str]:
    """`env` with RAY_ADDRESS naming the GCS of the Ray cluster that `proc` (a server started
    with `SERVER_PROCESS`) started, read from its raylet's command line. A script deploying
    into that cluster then joins it, not whatever /tmp/ray/ray_current_cluster names (another
    session's cluster, possibly dead: `ray.init(address="auto")` then hangs). A cluster that
    `ray.init()` started uses token authentication unless RAY_AUTH_MODE says otherwise, and
    Ray enables it for a named address only when told, so RAY_AUTH_MODE defaults to token."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != proc.pid:
                continue
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"/raylet"):
            for arg in cmd:
                if arg.startswith(b"--gcs-address="):
                    address = arg.split(b"=", 1)[1].decode()
                    return {"RAY_AUTH_MODE": "token", **env, "RAY_ADDRESS": address}
    raise RuntimeError(f"no raylet of server pid {proc.pid} found")


def all_profiles_ready(response: httpx.Response) -> bool:
    """`GET /healthz` of `orchestrator serve` says every profile is ready."""
    return all(response.json()["profiles"].values())


def bench_workdir(prefix: str) -> Path:
    """A fresh directory for the bench's logs; prints the machine, its load and the directory
    (every bench's first line)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    print(f"machine: {machine()}; logs in {work}", flush=True)
    return work


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """What a bench says of the machine it ran on: CPU, cores, Python and load average."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"load average {load_average()}"
    )


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def profile_parser(description: str | None) -> argparse.ArgumentParser:
    """A bench's argument parser, starting with the profile it measures: `--deployments` (a
    catalog) and `--profile` (a name in it; `chosen_profile(args)` reads them), and where its
    results go: `--json` and `--plot`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--deployments", type=Path, default=ROOT / "deployments" / "local.yaml")
    parser.add_argument("--profile", default="smollm2-cpu")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--plot", type=Path, default=None, help="draw the results (PNG)")
    return parser


def chosen_profile(args: argparse.Namespace) -> Profile:
    return load_catalog(args.deployments).profile(args.profile)


def write_json(path: Path | None, results: object) -> None:
    """The bench's results as indented JSON at `path` (`--json`); nothing without one."""
    if path is not None:
        path.write_text(json.dumps(results, indent=2))
