"""Shared fixtures: the shipped artifact, loaded once; calibration stores in tmp folders."""

from __future__ import annotations

import pytest

from orchestrator.predict.artifact import DEFAULT_ARTIFACT_DIR, load_artifact
from orchestrator.predict.predictor import Predictor
from orchestrator.predict.store import PredictorStore


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    """Calibration and traffic never touch the user's state dir during tests."""
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="session")
def artifact():
    return load_artifact(DEFAULT_ARTIFACT_DIR)


@pytest.fixture
def predictor(artifact):
    return Predictor(artifact, store=None)


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "predictor.sqlite"


@pytest.fixture
def stored_predictor(artifact, store_path):
    store = PredictorStore(store_path)
    yield Predictor(artifact, store=store)
    store.close()
