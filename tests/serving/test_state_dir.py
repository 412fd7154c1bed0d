"""The ingress's state dir reaches the ledger and the predictor as an argument, not through
the process environment (`paths.state_dir(root)`)."""

from __future__ import annotations

import os

from orchestrator.ledger import LEDGER_ENV
from orchestrator.paths import STATE_DIR_ENV
from orchestrator.predict import Predictor
from orchestrator.serving.storage_target import resolve_target


def test_the_default_ledger_is_in_the_given_state_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(LEDGER_ENV, raising=False)
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert resolve_target(None, {}, state_dir=tmp_path) == str(tmp_path / "usage.sqlite3")
    assert resolve_target("x.db", {}, state_dir=tmp_path) == "x.db"  # explicit still wins
    assert os.environ[STATE_DIR_ENV] == str(tmp_path / "elsewhere")


def test_the_predictor_of_a_state_dir_keeps_its_calibration_there(tmp_path, monkeypatch):
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "elsewhere"))
    predictor = Predictor.default(tmp_path)
    assert predictor.store.path == str(tmp_path / "predictor" / "predictor.sqlite")
    assert Predictor.default(tmp_path) is predictor  # one per state dir and process
    assert os.environ[STATE_DIR_ENV] == str(tmp_path / "elsewhere")
