"""Scale-out settings without a cluster: which ledger a target names, credentials never shown,
the precedence of --ledger / $ORCHESTRATOR_DATABASE_URL / the default, and the refusal of more
than one ingress replica on a SQLite ledger (CLI, app builder)."""

from __future__ import annotations

import pytest

from orchestrator.cli import build_parser, main
from orchestrator.cli.serve import ingress_scaling, ledger_setting
from orchestrator.serving.storage_target import (
    DATABASE_URL_ENV,
    check_ingress_replicas,
    resolve_target,
)
from orchestrator.storage.target import backend, redact

URL = "postgresql://orch:s3cr3t@db:5432/orchestrator"


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        (URL, "postgresql"),
        ("postgres://db/x", "postgresql"),
        ("postgresql+psycopg://u@db/x", "postgresql"),
        ("/var/lib/orchestrator/ledger.sqlite", "sqlite"),
        ("relative/usage.sqlite3", "sqlite"),
        ("C:\\ledger://odd.sqlite", "sqlite"),
    ],
)
def test_backend_by_target(target, kind):
    assert backend(target) == kind


def test_unknown_scheme_is_refused_without_its_password():
    with pytest.raises(ValueError, match="unsupported URL scheme 'mysql'") as err:
        backend("mysql://u:hunter2@h/db")
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (URL, "postgresql://orch:***@db:5432/orchestrator"),
        ("postgresql://orch@db/x", "postgresql://orch@db/x"),
        ("postgresql://db/x?password=pw&sslmode=require", "postgresql://db/x?password=***&sslmode=require"),
        ("/tmp/usage.sqlite3", "/tmp/usage.sqlite3"),
    ],
)  # fmt: skip
def test_redact_masks_passwords_only(target, shown):
    assert redact(target) == shown


def test_explicit_beats_environment_beats_default(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("ORCHESTRATOR_LEDGER", raising=False)
    assert resolve_target("/x.sqlite", {DATABASE_URL_ENV: URL}) == "/x.sqlite"
    assert resolve_target(None, {DATABASE_URL_ENV: URL}) == URL
    assert resolve_target(None, {DATABASE_URL_ENV: "  "}) == str(tmp_path / "usage.sqlite3")


def test_more_than_one_ingress_replica_needs_postgresql():
    check_ingress_replicas("/x.sqlite", 1)
    check_ingress_replicas(URL, 8)
    with pytest.raises(ValueError, match="SQLite ledger '/x.sqlite' is one machine's file"):
        check_ingress_replicas("/x.sqlite", 2)


def _serve_args(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_cli_flags_become_the_ingress_scaling(monkeypatch):
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    args = _serve_args(
        "--ledger", URL, "--ingress-min-replicas", "2", "--ingress-max-replicas", "6",
        "--ingress-target-ongoing-requests", "50",
    )  # fmt: skip
    scaling = ingress_scaling(args)
    assert (scaling.min_replicas, scaling.max_replicas, scaling.target_ongoing_requests) == (
        2,
        6,
        50.0,
    )
    assert ledger_setting(args) == URL


def test_cli_takes_the_url_from_its_environment(monkeypatch):
    monkeypatch.setenv(DATABASE_URL_ENV, URL)
    args = _serve_args("--ingress-max-replicas", "3")
    assert ledger_setting(args) == URL  # passed to the app: joined clusters lack this env
    assert ingress_scaling(args).max_replicas == 3
    assert ledger_setting(_serve_args("--ledger", "/tmp/l.sqlite")) == "/tmp/l.sqlite"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ingress-max-replicas", "2"], "needs a shared ledger"),
        (["--ingress-min-replicas", "3"], "--ingress-min-replicas/--ingress-max-replicas"),
        (["--ingress-min-replicas", "0"], "--ingress-min-replicas: Input should be greater"),
        (["--ingress-target-ongoing-requests", "0"], "--ingress-target-ongoing-requests"),
    ],
)
def test_cli_refuses_before_starting_ray(argv, message, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(tmp_path))
    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err


def test_app_builder_refuses_sqlite_with_replicas(monkeypatch, tmp_path):
    """Checked before anything is deployed (no Ray needed to see the refusal)."""
    from orchestrator.serving.app import build_app

    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="needs a shared ledger"):
        build_app({"ingress_max_replicas": 2, "ledger": str(tmp_path / "l.sqlite")})
    with pytest.raises(ValueError, match="needs a shared ledger"):
        build_app({"ingress_max_replicas": 2})  # the default ledger is SQLite too
