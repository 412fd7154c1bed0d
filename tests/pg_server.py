"""A throwaway PostgreSQL server for tests: initdb + pg_ctl in a temporary folder, loopback only.

`PostgresServer.start()` finds Debian's binaries (PATH, else /usr/lib/postgresql/*/bin), runs
them as the `postgres` user when the tests run as root (initdb refuses root), listens on a free
127.0.0.1 port with trust auth and fsync off (test data is throwaway), and `stop()` removes it.
`fresh_url()` gives each test its own schema (cheaper than a database per test).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

USER = "orchestrator"


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        real = Path(os.path.realpath(found)).parent
        if (real / "pg_ctl").exists():
            return real
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, user=self.run_as, capture_output=True, text=True, check=True, timeout=120
        )

    @classmethod
    def start(cls, bin_dir: Path, *, durable: bool = False) -> PostgresServer:
        """`durable=False` (tests) turns fsync and synchronous commit off; benchmarks keep
        PostgreSQL's defaults (durable commits)."""
        root = Path(tempfile.mkdtemp(prefix="orchestrator-pg-"))
        run_as = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            run_as = "postgres"
            entry = pwd.getpwnam(run_as)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir, root, free_port(), run_as)
        data = root / "data"
        server._run(
            str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        server._run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return server

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"),
                      "-m", "immediate", "-w", "stop")  # fmt: skip
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def fresh_url(self) -> str:
        """A URL whose connections see only a new, empty schema."""
        import psycopg

        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.url}?options=-csearch_path%3D{schema}"
