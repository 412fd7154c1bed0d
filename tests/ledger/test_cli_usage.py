"""`orchestrator usage`: the table, JSON, time filters and errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.cli import main
from orchestrator.ledger import UsageLedger, parse_time
from tests.usage_rows import usage_row

NOW = datetime.now(UTC)


def _fill(path) -> None:
    with UsageLedger(path) as led:
        for i, (tenant, profile, cost, age_h) in enumerate(
            [
                ("acme", "smollm2-cpu", 0.25, 1),
                ("acme", "smollm2-cpu", 0.5, 2),
                ("acme", "smollm2-cpu-ngram", 1.0, 30),
                ("beta", "smollm2-cpu", 2.0, 1),
            ]
        ):
            at = NOW - timedelta(hours=age_h)
            row = usage_row(f"r{i}", cost, tenant=tenant, profile=profile, at=at, prompt_tokens=100)
            led.settle(row)


def test_table_lists_tenants_profiles_and_totals(tmp_path, capsys):
    path = tmp_path / "u.sqlite3"
    _fill(path)
    assert main(["usage", "--ledger", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {tuple(line.split()[:2]): line.split() for line in out[2:]}
    assert rows[("acme", "smollm2-cpu")][2] == "2"  # requests
    assert rows[("acme", "smollm2-cpu")][-1] == "0.750000"
    assert rows[("acme", "smollm2-cpu-ngram")][-1] == "1.000000"
    assert rows[("acme", "(all)")][-1] == "1.750000"
    assert rows[("beta", "smollm2-cpu")][-1] == "2.000000"
    assert out[-1].split()[0] == "TOTAL" and out[-1].split()[-1] == "3.750000"


def test_since_and_tenant_filter_json(tmp_path, capsys):
    path = tmp_path / "u.sqlite3"
    _fill(path)
    assert (
        main(["usage", "--ledger", str(path), "--since", "24h", "--tenant", "acme", "--json"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert [(d["profile"], d["requests"], d["cost_usd"]) for d in data] == [
        ("smollm2-cpu", 2, 0.75)
    ]


def test_missing_sqlite_file_is_an_empty_report(tmp_path, capsys):
    missing = tmp_path / "none.sqlite3"
    assert main(["usage", "--ledger", str(missing)]) == 0
    captured = capsys.readouterr()
    assert "no requests recorded" in captured.out and "no ledger" in captured.err
    assert main(["usage", "--ledger", f"sqlite://{missing}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not missing.exists()  # a reader creates nothing


def test_bad_time(tmp_path, capsys):
    path = tmp_path / "u.sqlite3"
    _fill(path)
    assert main(["usage", "--ledger", str(path), "--since", "yesterday-ish"]) == 2
    assert "cannot read time" in capsys.readouterr().err


def test_not_a_ledger_file(tmp_path, capsys):
    path = tmp_path / "junk.sqlite3"
    path.write_text("this is not sqlite")
    assert main(["usage", "--ledger", str(path)]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_empty_ledger_and_env_default(tmp_path, capsys, monkeypatch):
    path = tmp_path / "u.sqlite3"
    UsageLedger(path).close()
    monkeypatch.setenv("ORCHESTRATOR_LEDGER", str(path))
    assert main(["usage"]) == 0
    assert "no requests recorded" in capsys.readouterr().out


def test_parse_time_forms():
    now = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
    assert parse_time("90m", now) == now - timedelta(minutes=90)
    assert parse_time("2d", now) == now - timedelta(days=2)
    assert parse_time("1.5h", now) == now - timedelta(minutes=90)
    assert parse_time("2026-05-01", now) == datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_time("2026-05-01T02:00+02:00", now) == datetime(2026, 5, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_time("soon", now)


def test_usage_reads_a_postgresql_ledger(postgres_server, capsys):
    url = postgres_server.fresh_url()
    with UsageLedger(url) as led:
        led.settle(usage_row("pg-1", 0.5, profile="p1"))
    assert main(["usage", "--ledger", url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["tenant"], r["requests"], r["cost_usd"]) for r in rows] == [("acme", 1, 0.5)]


def test_usage_on_a_brand_new_postgresql_database(postgres_server, capsys):
    url = postgres_server.fresh_url()  # an empty schema: no ledger table yet
    assert main(["usage", "--ledger", url]) == 0
    captured = capsys.readouterr()
    assert "no requests recorded" in captured.out and captured.err == ""
    assert main(["usage", "--ledger", url, "--json", "--since", "24h"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_unknown_url_scheme_is_refused(capsys):
    assert main(["usage", "--ledger", "mysql://u:secret@h/db"]) == 2
    err = capsys.readouterr().err
    assert "unsupported URL scheme 'mysql'" in err and "secret" not in err
