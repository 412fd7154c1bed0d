"""Where the predictor keeps what it learns from traffic: one SQLite file under state_dir().

Two tables:
- `calibration(profile, state, updated)`: each profile's `ProfileCalibration` as JSON;
  updated in a write transaction (read-modify-write), so several server processes can share it.
- `traffic(...)`: one row per finished request: the feature vector (float32), the lexical
  token ids and hashed phrase slots (no prompt text is stored), prompt tokens, the prediction
  and the actual output and thinking tokens. `orchestrator predictor train --from-traffic` refits from it.

Built on orchestrator.storage (the ledger's connection, transaction and schema-version helper:
component `predictor`, migrations below). It stays a per-host SQLite file (docs/storage.md).
WAL mode with synchronous=NORMAL: a commit costs no fsync.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator import paths
from orchestrator.predict.calibration import ProfileCalibration
from orchestrator.storage import Migration, Tx, migrate
from orchestrator.storage.sqlite import SQLiteDatabase

COMPONENT = "predictor"


def _add_phrase_ids(tx: Tx, dialect: str) -> None:
    """A store written before the phrase model existed lacks `traffic.phrase_ids`."""
    if dialect == "postgresql":
        tx.execute(
            "ALTER TABLE traffic ADD COLUMN IF NOT EXISTS phrase_ids BYTEA NOT NULL DEFAULT ''"
        )
        return
    columns = {row[1] for row in tx.execute("PRAGMA table_info(traffic)").fetchall()}
    if "phrase_ids" not in columns:
        tx.execute("ALTER TABLE traffic ADD COLUMN phrase_ids BLOB NOT NULL DEFAULT x''")


MIGRATIONS = (
    Migration(
        1,
        "calibration states and labelled traffic",
        """
        CREATE TABLE IF NOT EXISTS calibration (
            profile TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            updated {float} NOT NULL
        );
        CREATE TABLE IF NOT EXISTS traffic (
            id {id},
            ts {float} NOT NULL,
            profile TEXT NOT NULL,
            feature_schema TEXT NOT NULL,
            features {blob} NOT NULL,
            lexical_ids {blob} NOT NULL,
            phrase_ids {blob} NOT NULL DEFAULT {empty_blob},
            prompt_tokens INTEGER NOT NULL,
            predicted_p50 INTEGER NOT NULL,
            predicted_p90 INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS traffic_profile ON traffic(profile)
        """,
    ),
    Migration(2, "traffic.phrase_ids on stores older than the phrase model", apply=_add_phrase_ids),
)
_UPSERT_CALIBRATION = (
    "INSERT INTO calibration(profile, state, updated) VALUES (?, ?, ?) "
    "ON CONFLICT(profile) DO UPDATE SET state = excluded.state, updated = excluded.updated"
)
_INSERT_TRAFFIC = (
    "INSERT INTO traffic(ts, profile, feature_schema, features, lexical_ids, "
    "phrase_ids, prompt_tokens, predicted_p50, predicted_p90, output_tokens, "
    "reasoning_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


StepFn = Callable[[ProfileCalibration], ProfileCalibration]


def default_store_path(state: Path | str | None = None) -> Path:
    """The store's file under `paths.state_dir(state)`."""
    return paths.state_dir(state) / "predictor" / "predictor.sqlite"


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
        self.db = SQLiteDatabase(self.path, synchronous="NORMAL", timeout_s=30.0)
        try:
            migrate(self.db, COMPONENT, MIGRATIONS)
        except Exception:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    # -- calibration -------------------------------------------------------------------------
    def load_calibrations(self) -> dict[str, ProfileCalibration]:
        rows = self.db.query("SELECT profile, state FROM calibration")
        return {name: ProfileCalibration.model_validate_json(state) for name, state in rows}

    def update_calibration(
        self,
        profile: str,
        initial: ProfileCalibration,
        step: Callable[[ProfileCalibration], ProfileCalibration],
    ) -> ProfileCalibration:
        """Apply `step` to the stored state (or `initial`) atomically; returns the new state."""
        with self.db.transaction() as tx:
            new = step(_stored_state(tx, profile, initial))
            _save_states(tx, {profile: new})
        return new

    def reset_calibration(self, profile: str | None = None) -> None:
        with self.db.transaction() as tx:
            if profile is None:
                tx.execute("DELETE FROM calibration")
            else:
                tx.execute("DELETE FROM calibration WHERE profile = ?", (profile,))

    # -- traffic -----------------------------------------------------------------------------
    def add_record(self, record: TrafficRecord) -> None:
        with self.db.transaction() as tx:
            tx.execute(_INSERT_TRAFFIC, _record_values(record))

    def learn_batch(
        self,
        items: list[tuple[TrafficRecord, ProfileCalibration, StepFn, bool]],
        finish: Callable[[str, ProfileCalibration], ProfileCalibration] | None = None,
    ) -> dict[str, ProfileCalibration]:
        """Fold labelled requests in, all or nothing: for each (record, initial calibration,
        step, keep) in order, apply `step` to the profile's current state (stored, else
        `initial`) and insert the record when `keep` (a censored answer teaches the calibration
        but is no training row); then `finish(profile, state)` on each profile touched; one
        write transaction, rolled back on any error. Returns the new state of every profile
        touched."""
        with self.db.transaction() as tx:
            states: dict[str, ProfileCalibration] = {}
            for record, initial, step, keep in items:
                name = record.profile
                if name not in states:
                    states[name] = _stored_state(tx, name, initial)
                states[name] = step(states[name])
                if keep:
                    tx.execute(_INSERT_TRAFFIC, _record_values(record))
            if finish is not None:
                states = {name: finish(name, state) for name, state in states.items()}
            _save_states(tx, states)
        return states

    def replace_calibrations(self, states: dict[str, ProfileCalibration]) -> None:
        """Set these profiles' states in one transaction (a refit's replayed calibrations)."""
        with self.db.transaction() as tx:
            _save_states(tx, states)

    def count_records(self) -> int:
        return int(self.db.query("SELECT COUNT(*) FROM traffic")[0][0])

    def iter_records(self) -> Iterator[TrafficRecord]:
        rows = self.db.query(
            "SELECT profile, feature_schema, features, lexical_ids, prompt_tokens, "
            "predicted_p50, predicted_p90, output_tokens, reasoning_tokens, ts, phrase_ids "
            "FROM traffic ORDER BY id"
        )
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


def _stored_state(tx: Tx, profile: str, initial: ProfileCalibration) -> ProfileCalibration:
    """The profile's stored calibration inside `tx`, else `initial`."""
    row = tx.execute("SELECT state FROM calibration WHERE profile = ?", (profile,)).fetchone()
    return ProfileCalibration.model_validate_json(row[0]) if row else initial


def _save_states(tx: Tx, states: Mapping[str, ProfileCalibration]) -> None:
    now = time.time()
    for name, state in states.items():
        tx.execute(_UPSERT_CALIBRATION, (name, state.model_dump_json(), now))


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
