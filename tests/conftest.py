"""Fixtures shared across test folders: storage backends (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import os
import pwd

import pytest

from tests.pg_server import PostgresServer, find_binaries


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server per test session (started on first use)."""
    bin_dir = find_binaries()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in "
            "/usr/lib/postgresql/*/bin: install Debian's postgresql package"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]' psycopg-pool)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run initdb/postgres as")
    server = PostgresServer.start(bin_dir)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request, tmp_path) -> str:
    """A fresh, empty database on each backend: a SQLite file path, or a PostgreSQL URL (its
    own schema on the session's server)."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return request.getfixturevalue("postgres_server").fresh_url()
