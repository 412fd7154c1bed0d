"""The engine processes of the e2e server's profiles: find one to kill, wait for its return."""

from __future__ import annotations

import re
import time

import httpx
import psutil

from orchestrator.engines.config import deployment_name

RESTART_TIMEOUT_S = 420


def engine_pid(profile: str) -> int:
    """The vLLM engine-core process under the Serve replica actor of `profile` (the replica
    process itself when the engine runs in it)."""
    title = re.compile(rf"ServeReplica:[^:\s]+:{re.escape(deployment_name(profile))}(?![\w-])")
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if not title.search(cmd):
            continue
        for child in proc.children(recursive=True):
            try:
                if "EngineCore" in child.name() or "EngineCore" in " ".join(child.cmdline()):
                    return child.pid
            except psutil.Error:
                continue
        return proc.pid
    raise AssertionError(f"no replica process found for profile {profile}")


def wait_profile_back(base_url: str, profile: str, timeout_s: float = RESTART_TIMEOUT_S) -> bool:
    """Whether `profile` passes the server's health check again within `timeout_s` (Ray
    replaces a replica whose engine died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{base_url}/healthz", timeout=10).json()["profiles"].get(profile):
            return True
        time.sleep(2)
    return False
