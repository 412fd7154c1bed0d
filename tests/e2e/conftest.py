"""A real `orchestrator serve` (local Ray, real vLLM CPU engines) shared by the e2e tests.

The server runs the embedded default catalog (two SmolLM2-135M profiles) with one profile
relabelled a stronger quality tier (`SHARED_TIERS`: tiers are labels on this catalog), so a
quality target has two tiers to choose from; it is started once per test session and stopped
with SIGTERM at the end, which is itself checked by a test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY
from tests.ports import free_port

READY_TIMEOUT_S = float(os.environ.get("ORCHESTRATOR_E2E_READY_TIMEOUT", "900"))


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    state_dir: Path
    policy_path: Path | None = None
    descendants: set[int] = field(default_factory=set)

    def log_tail(self, n: int = 60) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(line[:400] for line in lines[-n:])

    def snapshot_descendants(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.descendants |= {
                c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)
            }

    def ingress_processes(self) -> list[psutil.Process]:
        """The processes of the ingress replicas (Ray Serve's `orchestrator:ingress` actors)."""
        found = []
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if "ServeReplica:orchestrator:ingress" in " ".join(p.cmdline()):
                    found.append(p)
            except psutil.Error:
                continue
        return found


# the shared server's catalog: the default one with these profiles relabelled (the other,
# smollm2-cpu-ngram, is the one price alone picks, and stays `small`)
SHARED_TIERS = {"smollm2-cpu": "medium"}


def relabelled_catalog(folder: Path, tiers: dict[str, str]) -> Path:
    """A copy of the embedded default catalog with `tiers` (profile -> quality tier) applied."""
    data = yaml.safe_load(DEFAULT_DEPLOYMENTS.read_text())
    for profile in data["profiles"]:
        if profile["name"] in tiers:
            profile["quality"] = {**profile.get("quality", {}), "tier": tiers[profile["name"]]}
    path = folder / "deployments.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


E2E_API_KEY = "sk-e2e-team-a-0123456789"  # given to the server as $ORCHESTRATOR_E2E_KEY


def team_a_policy(
    name: str, *, team_a: str = "", default: str = "", unknown_keys: str = "default_tenant"
) -> str:
    """The text of a policy `name` with the default tenant and tenant `team-a`, whose API key
    is the e2e server's (`E2E_API_KEY`, in $ORCHESTRATOR_E2E_KEY); `default` and `team_a` are
    more fields of each tenant, as YAML lines."""

    def fields(lines: str, indent: str) -> str:
        return "".join(f"{indent}{line}\n" for line in lines.splitlines())

    return (
        f"apiVersion: orchestrator/v1\nkind: Policy\nmetadata: {{name: {name}}}\n"
        f"unknown_keys: {unknown_keys}\ndefault_tenant:\n  name: default\n"
        + fields(default, "  ")
        + "tenants:\n  - name: team-a\n    api_keys:\n      - env: ORCHESTRATOR_E2E_KEY\n"
        + fields(team_a, "    ")
    )


def start_server(
    tmp: Path,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    ready: Callable[[dict[str, bool]], bool] = lambda profiles: all(profiles.values()),
) -> RunningServer:
    """Start `orchestrator serve` on the embedded default, with a private copy of the default
    policy (tests rewrite it) and a private state directory (ledger, calibration); `env` adds
    to the server's environment. Up once /healthz answers 200 and `ready` holds of its
    profiles (profile -> a replica runs; default: every profile)."""
    port = free_port()
    log_path = tmp / "serve.log"
    policy = tmp / "policy" / "policy.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(DEFAULT_POLICY.read_text())
    env = {**os.environ, **(env or {})}
    env["ORCHESTRATOR_STATE_DIR"] = str(tmp / "state")
    env["ORCHESTRATOR_E2E_KEY"] = E2E_API_KEY
    env.pop("RAY_ADDRESS", None)
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        "serve",
        "--port",
        str(port),
        "--policy",
        str(policy),
    ]
    cmd += extra_args or []
    # its own process group (killpg stops all of it) but this session: a server in its own
    # session is a separate CPU-scheduling group on Linux (autogroup), and the test's clients
    # were starved by it (an overload test's 64 client threads sent 5 requests in 12 s)
    proc = subprocess.Popen(
        cmd, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env, process_group=0
    )
    server = RunningServer(proc, f"http://127.0.0.1:{port}", log_path, tmp / "state", policy)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"orchestrator serve exited with {proc.returncode}:\n{server.log_tail()}"
            )
        try:
            r = httpx.get(f"{server.base_url}/healthz", timeout=5)
            if r.status_code == 200 and ready(r.json()["profiles"]):
                server.snapshot_descendants()
                return server
        except httpx.HTTPError:
            pass
        time.sleep(3)
    stop_server(server)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def stop_server(server: RunningServer, timeout_s: float = 120) -> int:
    """SIGTERM the serve command and wait; returns its exit code (kills the group on timeout)."""
    server.snapshot_descendants()
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
    return server.proc.returncode


def reload_policy(server: RunningServer, text: str, timeout_s: float = 60) -> None:
    """Write the server's policy file and wait until it has loaded it (its version changes)."""

    def version() -> str | None:
        status = httpx.get(f"{server.base_url}/v1/orchestrator/status", timeout=10).json()
        return status["policy"]["version"]

    before = version()
    server.policy_path.write_text(text)
    deadline = time.monotonic() + timeout_s
    while version() == before:
        assert time.monotonic() < deadline, "the server did not reload the policy"
        time.sleep(0.5)


def wait_until_the_model_alone_prices(server: RunningServer, timeout_s: float = 120.0) -> None:
    """Until no profile has a fresh latency scale: earlier tests' answers (an overload, a
    killed engine) leave a profile's observed/modelled ratio high for up to a minute, and a
    profile that looks slow rightly keeps a burst off it."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = httpx.get(f"{server.base_url}/v1/orchestrator/status", timeout=30).json()
        scales = {n: p["latency_scale"] for n, p in status["profiles"].items()}
        if all(v is None for s in scales.values() for v in s.values()):
            return
        assert time.monotonic() < deadline, f"latency scales still fresh: {scales}"
        time.sleep(2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `stops_server` run after every other test, whatever their file names or
    the order the files were given in: they stop the session's shared server. Tests marked
    `own_server` (they start a server of their own) run after those, so two servers never run
    at once."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("own_server") is not None,
            item.get_closest_marker("stops_server") is not None,
        )
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    external = os.environ.get("ORCHESTRATOR_E2E_URL")  # develop against a server already up
    if external:
        yield RunningServer(
            subprocess.Popen(["true"]), external.rstrip("/"), Path("/dev/null"), Path(".")
        )
        return
    tmp = tmp_path_factory.mktemp("serve")
    srv = start_server(tmp, ["--deployments", str(relabelled_catalog(tmp, SHARED_TIERS))])
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def client(server: RunningServer):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.base_url}/v1", api_key="any-key", max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def family() -> str:
    return "smollm2-135m-instruct"
