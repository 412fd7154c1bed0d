"""What a storage target string names, and how to print it safely.

A target is a SQLite file path (`usage.sqlite3`, `/var/lib/x.db`, `sqlite:///abs/path`,
`:memory:`) or a PostgreSQL URL (`postgresql://`, `postgres://`, `postgresql+psycopg://`).

Invariants:
- `backend` is total over paths (a path may contain '://' after its first '/') and refuses any
  other URL scheme with a message naming the accepted ones;
- `redact` masks the password in the user info and in secret query parameters; every message
  or log line naming a target goes through it;
- `connect_url` is what psycopg accepts (`postgresql://`), `sqlite_path` the file SQLite opens.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

Backend = Literal["sqlite", "postgresql"]
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
SECRET_QUERY_KEYS = frozenset({"password", "passfile", "sslpassword"})


def scheme(target: str) -> str | None:
    """The URL scheme, lower-cased, or None for a plain path."""
    head, sep, _ = target.partition("://")
    if not sep or not head or "/" in head or "\\" in head:
        return None
    return head.lower()


def backend(target: str) -> Backend:
    """'postgresql' for a PostgreSQL URL, 'sqlite' for a path or sqlite:// URL; ValueError
    for any other URL."""
    kind = scheme(target)
    if kind is None or kind == "sqlite":
        return "sqlite"
    if kind in POSTGRES_SCHEMES:
        return "postgresql"
    raise ValueError(
        f"database {redact(target)!r}: unsupported URL scheme {kind!r} "
        "(use a SQLite file path or a postgresql:// URL)"
    )


def sqlite_path(target: str) -> str:
    """The file a SQLite target names (`sqlite:///abs` -> `/abs`, `sqlite://rel` -> `rel`)."""
    return target[len("sqlite://") :] if scheme(target) == "sqlite" else target


def connect_url(target: str) -> str:
    """A PostgreSQL URL in the form psycopg connects with."""
    head, _, rest = target.partition("://")
    return f"postgresql://{rest}" if head.lower() in POSTGRES_SCHEMES else target


def redact(target: str) -> str:
    """The target with its password (user info and secret query parameters) masked."""
    if scheme(target) is None:
        return target
    parts = urlsplit(target)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if has_password else f"{userinfo}@{hostport}"
    query = urlencode(
        [
            (k, "***" if k.lower() in SECRET_QUERY_KEYS else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
