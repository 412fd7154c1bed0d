"""Real Ray nodes on this machine, each a `ray start --block` process in its own session.

Each node is one process tree (`ray start` -> GCS/raylet/agents -> workers -> engines); `kill`
SIGKILLs every process of the tree that was ever seen (snapshots are taken as the tree grows),
so a node "dies" the way a lost machine does, and nothing it started outlives the test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.ports import free_port


@dataclass
class RayNode:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    seen: set[int] = field(default_factory=set)

    def snapshot(self) -> set[int]:
        """Remember every process of the tree now (workers come and go)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            self.seen |= {self.proc.pid}
            self.seen |= {c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)}
        return self.seen

    def kill(self) -> None:
        """SIGKILL every process this node started (raylet, agents, workers, engines)."""
        self.snapshot()
        procs = []
        for pid in self.seen:
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.append(psutil.Process(pid))
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def auth_env(tmp: Path) -> dict[str, str]:
    """Token authentication (Ray's default for `ray start --head`) with a token of our own, so
    no process reads or writes the shared ~/.ray/auth_token; every node and driver needs it
    (in its environment before `import ray`: Ray reads the mode once, at import)."""
    token = tmp / "ray-auth-token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))  # what `ray get-auth-token --generate` writes
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


def start_node(
    name: str,
    tmp: Path,
    *,
    num_cpus: int,
    labels: dict[str, str],
    head_port: int | None = None,
    address: str | None = None,
    env: dict[str, str] | None = None,
    object_store_bytes: int | None = None,
    attempts: int = 3,
    settle_s: float = 15.0,
) -> RayNode:
    """Start a head (`head_port`) or a worker joining `address`; returns once it is up and has
    stayed up for `settle_s` (a raylet exits when one of its agents cannot bind its port, which
    `free_port()` cannot rule out: another process may take the port first). A node that does
    not settle is killed and started again with fresh agent ports, up to `attempts` times."""
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        node = _launch(
            name,
            tmp / f"ray-{name}-{attempt}.log",
            tmp,
            num_cpus=num_cpus,
            labels=labels,
            head_port=head_port,
            address=address,
            env=env,
            object_store_bytes=object_store_bytes,
        )
        failure = _settle(node, settle_s)
        if failure is None:
            return node
        node.kill()
        failures.append(f"attempt {attempt}: {failure}")
    raise RuntimeError(f"ray start ({name}) failed {attempts} times:\n" + "\n".join(failures))


def _launch(
    name: str,
    log_path: Path,
    tmp: Path,
    *,
    num_cpus: int,
    labels: dict[str, str],
    head_port: int | None,
    address: str | None,
    env: dict[str, str] | None,
    object_store_bytes: int | None,
) -> RayNode:
    cmd = [
        "ray",
        "start",
        "--block",
        f"--num-cpus={num_cpus}",
        "--labels=" + ",".join(f"{k}={v}" for k, v in labels.items()),
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--disable-usage-stats",
    ]
    if object_store_bytes:
        cmd.append(f"--object-store-memory={object_store_bytes}")
    if head_port is not None:
        cmd += ["--head", f"--port={head_port}", "--include-dashboard=false"]
        cmd += [f"--ray-client-server-port={free_port()}", "--node-ip-address=127.0.0.1"]
    else:
        assert address is not None
        cmd += [f"--address={address}", "--node-ip-address=127.0.0.1"]
    proc = subprocess.Popen(
        cmd,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **auth_env(tmp), **(env or {})},
        start_new_session=True,
    )
    return RayNode(name, proc, log_path)


def _settle(node: RayNode, settle_s: float) -> str | None:
    """None once the node's raylet has come up and stayed up for `settle_s`; else why not."""
    deadline = time.monotonic() + 60
    up_since: float | None = None
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            return f"exited {node.proc.returncode}:\n{node.log_tail()}"
        has_raylet = any("raylet" in _name(pid) for pid in node.snapshot())
        if up_since is not None and not has_raylet:
            return f"its raylet exited:\n{node.log_tail()}"
        if has_raylet and up_since is None:
            up_since = time.monotonic()
            deadline = max(deadline, up_since + settle_s + 1)
        if up_since is not None and time.monotonic() - up_since >= settle_s:
            return None
        time.sleep(0.5)
    return f"did not bring up a raylet within 60 s:\n{node.log_tail()}"


def _name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.NoSuchProcess:
        return ""
