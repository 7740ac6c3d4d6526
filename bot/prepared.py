"""Core statements for the webhook's request path, run on the driver's own cursor.

A `Prepared` statement is compiled once per database dialect and then executed on the pooled
connection's DB-API cursor: a request pays for no statement compilation, cache-key lookup,
parameter construction or result wrapping, only for the driver's work (SQLite and psycopg
keep a prepared statement per connection for a repeated SQL text). Values still go through
the columns' types (JSON, timestamps), so a row written here reads back as one the ORM wrote,
and the driver's errors are raised as SQLAlchemy's (an `IntegrityError` is still one). Rows
come back as the driver gives them (tuples; SQLite's booleans as 0 and 1).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


@dataclass(frozen=True)
class Compiled:
    """SQL text in the driver's parameter style, the order of its parameters, how each value
    is processed, and the statement's own literals (the 1 of ``attempts + 1``)."""

    sql: str
    names: tuple[str, ...]
    positional: bool
    processors: tuple[Callable[[Any], Any] | None, ...]
    literals: Mapping[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement, dialect: Dialect) -> Compiled:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(binds)
        processors = tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                           for name in names)
        literals = {name: binds[name].value for name in names if not binds[name].required}
        return cls(compiled.string, names, compiled.positional, processors, literals)

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        given = (values[name] if name in values else self.literals[name] for name in self.names)
        processed = [value if process is None else process(value)
                     for value, process in zip(given, self.processors, strict=True)]
        if self.positional:
            return tuple(processed)
        return dict(zip(self.names, processed, strict=True))


class Prepared:
    """A Core statement, compiled for each dialect it is first run on."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: weakref.WeakKeyDictionary[Dialect, Compiled] = (
            weakref.WeakKeyDictionary())

    def run(self, connection: Connection, values: Mapping[str, Any]) -> Any:
        """Execute on ``connection``'s DB-API connection, in whatever transaction that is in
        (`transaction` below, or ``connection``'s or its session's); the driver's cursor."""
        dialect = connection.dialect
        compiled = self._compiled.get(dialect)
        if compiled is None:
            compiled = self._compiled[dialect] = Compiled.of(self.statement, dialect)
        parameters = compiled.parameters(values)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(compiled.sql, parameters)
        except dialect.loaded_dbapi.Error as exc:
            raise _translated(exc, dialect, compiled.sql, parameters) from exc
        return cursor

    def run_in(self, session: Session, values: Mapping[str, Any]) -> Any:
        """As `run`, in ``session``'s transaction. A session bound to a connection (the
        webhook's, whose transaction is already begun) lends it without a session
        transaction of its own; any other takes its connection as usual. For reads before
        any ORM change: nothing pending in the session is flushed first."""
        bind = session.get_bind()
        return self.run(bind if isinstance(bind, Connection) else session.connection(), values)


@contextmanager
def transaction(connection: Connection) -> Iterator[None]:
    """A transaction of ``connection``'s DB-API connection around the block, for `Prepared`
    statements: committed after it, rolled back when it raises. ``connection`` itself must
    not be in a transaction of its own."""
    dbapi = connection.connection
    try:
        yield
    except BaseException:
        dbapi.rollback()
        raise
    try:
        dbapi.commit()
    except connection.dialect.loaded_dbapi.Error as exc:
        dbapi.rollback()
        raise _translated(exc, connection.dialect, "COMMIT", ()) from exc


def _translated(error: Exception, dialect: Dialect, sql: str, parameters: Any,
                ) -> StatementError:
    """The driver's ``error`` as SQLAlchemy raises it (IntegrityError, OperationalError, …)."""
    return DBAPIError.instance(sql, parameters, error, dialect.loaded_dbapi.Error)
