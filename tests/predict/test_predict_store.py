"""The predictor's store on the shared storage helper: schema versions, legacy files, all or
nothing batches."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from orchestrator.predict.store import PredictorStore, TrafficRecord
from orchestrator.storage import current_version

_OLD_SCHEMA = """
CREATE TABLE calibration (profile TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE traffic (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, profile TEXT NOT NULL,
    feature_schema TEXT NOT NULL, features BLOB NOT NULL, lexical_ids BLOB NOT NULL,
    prompt_tokens INTEGER NOT NULL, predicted_p50 INTEGER NOT NULL, predicted_p90 INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL
);
"""


def record(profile: str = "p", out: int = 7) -> TrafficRecord:
    return TrafficRecord(
        profile=profile,
        feature_schema="s1",
        features=np.arange(3, dtype=np.float32),
        lexical_ids=np.array([1, 2], dtype=np.int32),
        prompt_tokens=10,
        predicted_p50=5,
        predicted_p90=9,
        output_tokens=out,
        reasoning_tokens=0,
        ts=1.0,
        phrase_ids=np.array([4], dtype=np.int32),
    )


def test_a_store_older_than_the_phrase_model_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as c:
        c.executescript(_OLD_SCHEMA)
        c.execute(
            "INSERT INTO traffic (ts, profile, feature_schema, features, lexical_ids, "
            "prompt_tokens, predicted_p50, predicted_p90, output_tokens, reasoning_tokens) "
            "VALUES (1, 'p', 's1', ?, ?, 10, 5, 9, 7, 0)",
            (np.zeros(3, np.float32).tobytes(), np.zeros(2, np.int32).tobytes()),
        )
    store = PredictorStore(path)
    try:
        assert current_version(store.db, "predictor") == 2
        (old,) = store.iter_records()
        assert old.phrase_ids.size == 0 and old.output_tokens == 7
        store.add_record(record())
        assert [r.phrase_ids.tolist() for r in store.iter_records()] == [[], [4]]
    finally:
        store.close()


def test_learn_batch_is_all_or_nothing(tmp_path):
    from orchestrator.predict.calibration import ProfileCalibration

    store = PredictorStore(tmp_path / "s.sqlite")
    initial = ProfileCalibration()

    def boom(state):
        raise RuntimeError("bad step")

    with pytest.raises(RuntimeError):
        store.learn_batch(
            [(record(), initial, lambda s: s, True), (record("q"), initial, boom, True)]
        )
    assert store.count_records() == 0 and store.load_calibrations() == {}
    states = store.learn_batch(
        [(record(), initial, lambda s: s, True), (record("q"), initial, lambda s: s, False)]
    )
    assert set(states) == {"p", "q"} == set(store.load_calibrations())
    assert store.count_records() == 1  # the row kept out (a censored answer) is not written
    store.close()


def test_memory_store_keeps_nothing_on_disk():
    store = PredictorStore(":memory:")
    store.add_record(record())
    assert store.count_records() == 1
    store.close()
