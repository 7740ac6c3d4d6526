"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL in production.

Each package that persists something owns its tables on its own SQLAlchemy ``MetaData``;
:func:`create_schema` creates them all. Domain packages receive sessions, never import this.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Reads through a memory map instead of a read() per page: a corpus export line spans a
    # hundred overflow pages, and reading them was a third of an export's time. Beyond the
    # first GiB of the file (SQLite caps the map at 2 GiB), pages are read as before.
    cursor.execute("PRAGMA mmap_size=1073741824")
    cursor.close()


def all_metadata() -> list[MetaData]:
    """The table sets of every package that persists something."""
    from bot import models
    from chains import store as chains_store
    from corpus import store as corpus_store
    from rollout import store as rollout_store

    return [models.Base.metadata, chains_store.Base.metadata, rollout_store.Base.metadata,
            corpus_store.Base.metadata]


SCHEMA_LOCK = 0x0DA71C1  # the PostgreSQL advisory lock taken while the schema is created


def create_schema(engine: Engine, attempts: int = 5) -> None:
    """Create missing tables; safe when several processes start at once on a new database.

    On PostgreSQL an advisory lock serialises the creators (DDL is transactional there); on
    SQLite a creator that lost the race to another one tries again and finds the tables.
    """
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                       {"key": SCHEMA_LOCK})
                for metadata in all_metadata():
                    metadata.create_all(connection)
            return
        except DBAPIError:
            if attempt == attempts:
                raise
            time.sleep(0.1 * attempt)


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be used; the message names it and the fix."""


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def require_existing(url: str) -> None:
    """Fail, creating nothing, when ``url`` is a SQLite file that does not exist yet."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise DatabaseUnavailable(f"no database yet: it would be {path.resolve()} (mine a "
                                  "repository with `davinci mine --git PATH`, or set "
                                  "DATABASE_URL or DAVINCI_DATA_DIR to where yours is)")


class Database:
    """An engine and its session factory; one per process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self) -> None:
        create_schema(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()
