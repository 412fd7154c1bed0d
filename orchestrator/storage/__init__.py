"""One storage interface, two backends: SQLite (embedded default) and PostgreSQL (shared by
several ingress replicas). Stores (usage ledger and budget reservations, decision log,
predictor traffic) are written once against `Database` and versioned with `migrate`.
See docs/storage.md."""

from orchestrator.storage.database import (
    Database,
    Dialect,
    StorageError,
    Tx,
    is_postgres_url,
)
from orchestrator.storage.migrations import Migration, current_version, migrate
from orchestrator.storage.open import open_database
from orchestrator.storage.target import Backend, backend, redact

__all__ = [
    "Backend",
    "backend",
    "redact",
    "Database",
    "Dialect",
    "Migration",
    "StorageError",
    "Tx",
    "current_version",
    "is_postgres_url",
    "migrate",
    "open_database",
]
