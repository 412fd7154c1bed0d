"""Where the predictor keeps what it learns from traffic: one SQLite file under state_dir().

Two tables:
- `calibration(profile, state, updated)`: each profile's `ProfileCalibration` as JSON;
  updated in a write transaction (read-modify-write), so several server processes can share it.
- `traffic(...)`: one row per finished request: the feature vector (float32), the lexical
  token ids and hashed phrase slots (no prompt text is stored), prompt tokens, the prediction
  and the actual output and thinking tokens. `orchestrator predictor train --from-traffic` refits from it.
WAL mode with synchronous=NORMAL: a commit costs no fsync.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator import paths
from orchestrator.predict.calibration import ProfileCalibration

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calibration (
    profile TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS traffic (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    profile TEXT NOT NULL,
    feature_schema TEXT NOT NULL,
    features BLOB NOT NULL,
    lexical_ids BLOB NOT NULL,
    phrase_ids BLOB NOT NULL DEFAULT x'',
    prompt_tokens INTEGER NOT NULL,
    predicted_p50 INTEGER NOT NULL,
    predicted_p90 INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traffic_profile ON traffic(profile);
"""


StepFn = Callable[[ProfileCalibration], ProfileCalibration]


def default_store_path() -> Path:
    return paths.state_dir() / "predictor" / "predictor.sqlite"


@dataclass(frozen=True)
class TrafficRecord:
    profile: str
    feature_schema: str
    features: np.ndarray  # float32, features.FEATURE_NAMES order
    lexical_ids: np.ndarray  # int32
    prompt_tokens: int
    predicted_p50: int
    predicted_p90: int
    output_tokens: int
    reasoning_tokens: int
    ts: float = 0.0
    phrase_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))


class PredictorStore:
    """Calibration states and traffic records in SQLite. `path=":memory:"` keeps nothing."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = str(path) if path is not None else str(default_store_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(traffic)")}
        if "phrase_ids" not in columns:  # a store written before the phrase model existed
            self._conn.execute(
                "ALTER TABLE traffic ADD COLUMN phrase_ids BLOB NOT NULL DEFAULT x''"
            )
        self._conn.commit()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- calibration -------------------------------------------------------------------------
    def load_calibrations(self) -> dict[str, ProfileCalibration]:
        with self._lock:
            rows = self._conn.execute("SELECT profile, state FROM calibration").fetchall()
        return {name: ProfileCalibration.model_validate_json(state) for name, state in rows}

    def update_calibration(
        self,
        profile: str,
        initial: ProfileCalibration,
        step: Callable[[ProfileCalibration], ProfileCalibration],
    ) -> ProfileCalibration:
        """Apply `step` to the stored state (or `initial`) atomically; returns the new state."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT state FROM calibration WHERE profile = ?", (profile,)
                ).fetchone()
                current = ProfileCalibration.model_validate_json(row[0]) if row else initial
                new = step(current)
                conn.execute(
                    "INSERT INTO calibration(profile, state, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT(profile) DO UPDATE SET state = excluded.state, "
                    "updated = excluded.updated",
                    (profile, new.model_dump_json(), time.time()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return new

    def reset_calibration(self, profile: str | None = None) -> None:
        with self._lock:
            if profile is None:
                self._conn.execute("DELETE FROM calibration")
            else:
                self._conn.execute("DELETE FROM calibration WHERE profile = ?", (profile,))
            self._conn.commit()

    # -- traffic -----------------------------------------------------------------------------
    _INSERT = (
        "INSERT INTO traffic(ts, profile, feature_schema, features, lexical_ids, "
        "phrase_ids, prompt_tokens, predicted_p50, predicted_p90, output_tokens, "
        "reasoning_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    @staticmethod
    def _record_values(record: TrafficRecord) -> tuple:
        return (
            record.ts or time.time(),
            record.profile,
            record.feature_schema,
            np.asarray(record.features, dtype=np.float32).tobytes(),
            np.asarray(record.lexical_ids, dtype=np.int32).tobytes(),
            np.asarray(record.phrase_ids, dtype=np.int32).tobytes(),
            int(record.prompt_tokens),
            int(record.predicted_p50),
            int(record.predicted_p90),
            int(record.output_tokens),
            int(record.reasoning_tokens),
        )

    def add_record(self, record: TrafficRecord) -> None:
        with self._lock:
            self._conn.execute(self._INSERT, self._record_values(record))
            self._conn.commit()

    def learn_batch(
        self,
        items: list[tuple[TrafficRecord, ProfileCalibration, StepFn]],
    ) -> dict[str, ProfileCalibration]:
        """Fold labelled requests in, all or nothing: for each (record, initial calibration,
        step) in order, apply `step` to the profile's current state (stored, else `initial`)
        and insert the record; one write transaction, rolled back on any error. Returns the
        new state of every profile touched."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                states: dict[str, ProfileCalibration] = {}
                for record, initial, step in items:
                    name = record.profile
                    if name not in states:
                        row = conn.execute(
                            "SELECT state FROM calibration WHERE profile = ?", (name,)
                        ).fetchone()
                        states[name] = (
                            ProfileCalibration.model_validate_json(row[0]) if row else initial
                        )
                    states[name] = step(states[name])
                    conn.execute(self._INSERT, self._record_values(record))
                now = time.time()
                for name, state in states.items():
                    conn.execute(
                        "INSERT INTO calibration(profile, state, updated) VALUES (?, ?, ?) "
                        "ON CONFLICT(profile) DO UPDATE SET state = excluded.state, "
                        "updated = excluded.updated",
                        (name, state.model_dump_json(), now),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return states

    def replace_calibrations(self, states: dict[str, ProfileCalibration]) -> None:
        """Set these profiles' states in one transaction (a refit's replayed calibrations)."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                for name, state in states.items():
                    conn.execute(
                        "INSERT INTO calibration(profile, state, updated) VALUES (?, ?, ?) "
                        "ON CONFLICT(profile) DO UPDATE SET state = excluded.state, "
                        "updated = excluded.updated",
                        (name, state.model_dump_json(), now),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def count_records(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM traffic").fetchone()[0])

    def iter_records(self) -> Iterator[TrafficRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT profile, feature_schema, features, lexical_ids, prompt_tokens, "
                "predicted_p50, predicted_p90, output_tokens, reasoning_tokens, ts, phrase_ids "
                "FROM traffic ORDER BY id"
            ).fetchall()
        for r in rows:
            yield TrafficRecord(
                profile=r[0],
                feature_schema=r[1],
                features=np.frombuffer(r[2], dtype=np.float32),
                lexical_ids=np.frombuffer(r[3], dtype=np.int32),
                prompt_tokens=r[4],
                predicted_p50=r[5],
                predicted_p90=r[6],
                output_tokens=r[7],
                reasoning_tokens=r[8],
                ts=r[9],
                phrase_ids=np.frombuffer(r[10], dtype=np.int32),
            )
