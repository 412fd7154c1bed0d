"""Hot reload of a policy file: poll, validate, swap atomically, keep the last good version.

Change detection hashes content, never trusts mtime alone: the policy file's bytes (read
through any symlinks, so a Kubernetes ConfigMap's `..data` symlink swap is seen) plus the
bytes of the key files the current policy reads (so a rotated Secret takes effect too).
Invariants:
- `current` is always a fully validated Policy; readers never see a half-applied one;
- an invalid or unreadable file never replaces it: the errors are logged once per distinct
  content and exposed by `status()` until a valid version loads;
- no Ray, no asyncio: one daemon thread (or explicit `check()` calls) drives it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from orchestrator.catalog.schema import Catalog
from orchestrator.config_files import ConfigError, ConfigIssue
from orchestrator.policy.loader import load_policy_text
from orchestrator.policy.model import Policy

log = logging.getLogger("orchestrator.policy")


class WatchStatus(BaseModel):
    """What a status endpoint shows about the policy in force."""

    model_config = ConfigDict(frozen=True)

    path: str
    resolved_path: str
    version: str | None
    loaded_at: datetime | None
    checked_at: datetime | None
    reloads: int
    last_error: list[str] | None
    last_error_at: datetime | None
    rejected_version: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class PolicyWatcher:
    """Watches one policy file and exposes the last good Policy as `.current`.

    Raises ConfigError from the constructor when the file is invalid and no `fallback`
    policy is given (a server should not start on a broken policy by accident).
    """

    def __init__(
        self,
        path: str | Path,
        catalog: Catalog,
        *,
        interval_s: float = 1.0,
        resolve_secrets: bool = True,
        env: Mapping[str, str] | None = None,
        fallback: Policy | None = None,
        on_change: Callable[[Policy], None] | None = None,
    ):
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.path = Path(path)
        self.catalog = catalog
        self.interval_s = interval_s
        self._resolve_secrets = resolve_secrets
        self._env = env
        self._on_change = on_change
        self._state_lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: Policy | None = fallback
        self._fingerprint: str | None = None
        self._loaded_at: datetime | None = None
        self._checked_at: datetime | None = None
        self._reloads = 0
        self._last_error: list[str] | None = None
        self._last_error_at: datetime | None = None
        self._rejected_version: str | None = None
        self._last_issues: list[ConfigIssue] = []
        self.check()
        if self._current is None:
            raise ConfigError(self._last_issues)

    # --- reading ------------------------------------------------------------------------

    @property
    def current(self) -> Policy:
        """The policy in force (a plain attribute read: atomic, lock-free)."""
        policy = self._current
        assert policy is not None
        return policy

    def status(self) -> WatchStatus:
        with self._state_lock:
            current = self._current
            return WatchStatus(
                path=str(self.path),
                resolved_path=os.path.realpath(self.path),
                version=current.version if current else None,
                loaded_at=self._loaded_at,
                checked_at=self._checked_at,
                reloads=self._reloads,
                last_error=list(self._last_error) if self._last_error else None,
                last_error_at=self._last_error_at,
                rejected_version=self._rejected_version,
            )

    # --- polling ------------------------------------------------------------------------

    def _fingerprint_of(self, data: bytes) -> str:
        h = hashlib.sha256(data)
        current = self._current
        for key_file in current.key_files if current else ():
            h.update(b"\0" + key_file.encode())
            try:
                h.update(Path(key_file).read_bytes())
            except OSError as exc:
                h.update(f"unreadable:{exc.errno}".encode())
        return h.hexdigest()

    def check(self) -> bool:
        """Look once; returns True when a new policy was swapped in."""
        with self._check_lock:
            now = _now()
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                fingerprint = f"unreadable:{exc.errno}"
                with self._state_lock:
                    self._checked_at = now
                if fingerprint != self._fingerprint:
                    self._fingerprint = fingerprint
                    issue = ConfigIssue(str(self.path), 1, "<file>", f"cannot read: {exc.strerror}")
                    self._reject([issue], None, now)
                return False
            fingerprint = self._fingerprint_of(data)
            with self._state_lock:
                self._checked_at = now
            if fingerprint == self._fingerprint:
                return False
            self._fingerprint = fingerprint
            return self._load(data, now)

    def _load(self, data: bytes, now: datetime) -> bool:
        try:
            text = data.decode("utf-8")
            policy = load_policy_text(
                text,
                str(self.path),
                self.catalog,
                resolve_secrets=self._resolve_secrets,
                env=self._env,
            )
        except ConfigError as exc:
            self._reject(exc.issues, hashlib.sha256(data).hexdigest()[:12], now)
            return False
        except Exception as exc:  # never let a bad file kill the watcher
            issue = ConfigIssue(str(self.path), 1, "<file>", f"{type(exc).__name__}: {exc}")
            self._reject([issue], None, now)
            return False
        with self._state_lock:
            previous = self._current
            self._current = policy
            self._loaded_at = now
            self._reloads += 1 if previous is not None else 0
            self._last_issues = []
            self._last_error = None
            self._last_error_at = None
            self._rejected_version = None
        self._fingerprint = self._fingerprint_of(data)  # now including the new key files
        log.info(
            "policy %s: version %s in force (was %s)",
            self.path,
            policy.version,
            previous.version if previous else "none",
        )
        if self._on_change is not None:
            try:
                self._on_change(policy)
            except Exception:
                log.exception("policy %s: on_change callback failed", self.path)
        return True

    def _reject(self, issues: list[ConfigIssue], version: str | None, now: datetime) -> None:
        errors = [str(i) for i in issues]
        with self._state_lock:
            self._last_issues = list(issues)
            self._last_error = errors
            self._last_error_at = now
            self._rejected_version = version
            keeping = self._current.version if self._current else "none"
        log.error(
            "policy %s rejected (%d error(s)); keeping version %s", self.path, len(errors), keeping
        )
        for e in errors:
            log.error("  %s", e)

    # --- background thread ----------------------------------------------------------------

    def start(self) -> PolicyWatcher:
        """Start polling every `interval_s` seconds in a daemon thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"policy-watch:{self.path.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # pragma: no cover - check() already contains its errors
                log.exception("policy %s: watcher check failed", self.path)

    def __enter__(self) -> PolicyWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
