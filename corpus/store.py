"""The corpus tables and appending to them: once per trajectory, whoever appends.

A record's export lines (`corpus_export_lines`, one per `formats.variant`) are what an export
writes, shaped and checked once: appending stores the default export's, and an export stores
the ones its records lack (other variants, records appended before lines were stored, or
shaped by an older `formats.SHAPING_VERSION`), so later exports only stream stored bytes.
"""

from __future__ import annotations

import fnmatch
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    Row,
    Select,
    String,
    Text,
    insert,
    literal_column,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from corpus import formats
from corpus.record import ExcludedRepository, record_id, redacted, repaired, validate


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class TrajectoryRow(Base):
    __tablename__ = "corpus_trajectories"
    __table_args__ = (Index("ix_corpus_appended", "appended_at", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repository: Mapped[str] = mapped_column(String(255), index=True)
    chain_id: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(255), nullable=True)
    score: Mapped[float] = mapped_column(Float)
    tokens: Mapped[int] = mapped_column(BigInteger)
    tool_calls: Mapped[int] = mapped_column()
    stages: Mapped[int] = mapped_column()
    created_at: Mapped[str] = mapped_column(String(40))
    appended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    document: Mapped[str] = mapped_column(Text)
    """The record without `messages` and `tools` (those are in `training_line`)."""
    training_line: Mapped[str] = mapped_column(Text)
    """The record as fine-tuning tools read it (`{"messages", "tools"}`), ready to export."""

    def record(self) -> dict[str, Any]:
        """The whole trajectory record."""
        return {**orjson.loads(self.document), **orjson.loads(self.training_line)}


class ExportLineRow(Base):
    """A record's bytes in one export variant, shaped and checked (`formats.line`)."""

    __tablename__ = "corpus_export_lines"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The trajectory's id."""
    variant: Mapped[str] = mapped_column(String(40), primary_key=True)
    """`formats.variant(format, arguments)`."""
    line: Mapped[bytes] = mapped_column(LargeBinary)


SHAPING_ERRORS = (formats.FormatError, json.JSONDecodeError, KeyError, TypeError)
"""What shaping a malformed record raises."""
STORED_AT_APPEND = (("openai", "string"),)
"""The variants `append` stores: the default export's. Each line costs an append about as much
again as storing the trajectory; the other variants are stored by the first export that
needs them."""


class RejectionRow(Base):
    """Rollouts the verifier rejected: counted for acceptance rates, never exported."""

    __tablename__ = "corpus_rejections"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repository: Mapped[str] = mapped_column(String(255))
    chain_id: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    appended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    verdict: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class Appended:
    id: str
    stored: bool
    """False when the same trajectory was already in the corpus."""


def check_repository(repository: str, excluded: Iterable[str]) -> None:
    for pattern in excluded:
        if fnmatch.fnmatch(repository.lower(), pattern.lower()):
            raise ExcludedRepository(f"{repository} is on the exclusion list ({pattern}): "
                                     "its trajectories must stay out of training data")


def _insert_ignoring_duplicates(session: Session, table: Any, values: dict[str, Any]) -> bool:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        statement: Any = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "postgresql":
        statement = pg_insert(table).values(**values).on_conflict_do_nothing()
    else:
        statement = insert(table).values(**values)
    # RETURNING tells whether a row went in; rowcount is not reliable across drivers here.
    return session.execute(statement.returning(*table.primary_key.columns)).first() is not None


def store_line(session: Session, record_id: str, variant: str, line: bytes) -> None:
    """Keep ``line`` as the record's export line in ``variant`` (once)."""
    _insert_ignoring_duplicates(session, ExportLineRow.__table__,
                                {"id": record_id, "variant": variant, "line": line})


def with_lines(session: Session, query: Select[Any]) -> Iterator[tuple[Row[Any], bytes]]:
    """Each row of ``query`` (which joins ExportLineRow) with that export line's bytes.

    On SQLite a line is read through incremental blob I/O by its rowid: one copy from the
    memory-mapped pages into the bytes, where selecting the column copies a line that spans a
    hundred overflow pages twice, with an allocation each (reading an export's lines took
    three times as long). The rows and the lines are read in one transaction, so that a rowid
    names the same row throughout (VACUUM may renumber the rows of a table without an
    INTEGER PRIMARY KEY, and a rowid freed by a deletion is given to the next line stored);
    begun here, it ends once the last line is read, and the session writes on from the
    latest state.

    No reference to a line is kept here once it is yielded: a caller that drops its own
    before asking for the next one lets the allocator reuse the line's buffer. With two held
    at once, it gave memory back to the system and faulted it in again line after line, a
    fifth of an export's time."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):
        for row in session.execute(query.add_columns(ExportLineRow.line)
                                   .execution_options(yield_per=32)):
            yield row, row.line
        return
    began = not driver.in_transaction
    if began:
        connection.exec_driver_sql("BEGIN")
    rowid = literal_column(f"{ExportLineRow.__tablename__}.rowid", Integer).label("line_rowid")
    for row in session.execute(query.add_columns(rowid).execution_options(yield_per=32)):
        yield row, _blob(driver, row.line_rowid)
    if began:  # it only read
        connection.exec_driver_sql("COMMIT")


def _blob(connection: sqlite3.Connection, rowid: int) -> bytes:
    """The line of ExportLineRow's row ``rowid``."""
    with connection.blobopen(ExportLineRow.__tablename__, "line", rowid, readonly=True) as blob:
        return blob.read()


def _store_lines(session: Session, record: dict[str, Any]) -> None:
    """The record's lines in the variants of STORED_AT_APPEND. A record a format's rules
    refuse gets none: the export that needs it shapes it again and fails with the reason,
    as it would have without stored lines."""
    try:
        encoded = formats.lines(record, STORED_AT_APPEND)
    except SHAPING_ERRORS:
        return
    for variant, line in encoded.items():
        store_line(session, record["id"], variant, line)


def append(session: Session, record: dict[str, Any], excluded: Iterable[str] = ()) -> Appended:
    """Gate, redact and store one accepted trajectory; a second append stores nothing."""
    check_repository(str(record.get("repository", "")), excluded)
    clean = redacted(repaired(record))
    validate(clean)
    clean["id"] = record_id(clean)
    clean.setdefault("created_at", utcnow().isoformat(timespec="seconds"))
    stored = _insert_ignoring_duplicates(session, TrajectoryRow.__table__, {
        "id": clean["id"], "repository": clean["repository"],
        "chain_id": str(clean["chain"].get("id", "")), "policy": clean["policy"],
        "model": clean.get("model"), "score": float(clean["score"]),
        "tokens": clean["tokens"], "tool_calls": clean["tool_calls"],
        "stages": len(clean["stages"]), "created_at": clean["created_at"],
        "appended_at": utcnow(),
        "document": json.dumps({k: v for k, v in clean.items() if k not in ("messages", "tools")},
                               ensure_ascii=False, separators=(",", ":")),
        "training_line": orjson.dumps({"messages": clean["messages"], "tools": clean["tools"]},
                                      option=orjson.OPT_NON_STR_KEYS).decode()})
    if stored:
        _store_lines(session, clean)
    return Appended(clean["id"], stored)


def record_rejection(session: Session, record: dict[str, Any], reason: str) -> Appended:
    """Keep a rejected rollout's verdict (not its messages) for acceptance rates."""
    identity = record.get("id") or record_id(record)
    verdict = {k: record.get(k) for k in ("repository", "chain", "stages", "policy", "model",
                                          "score", "tokens", "tool_calls", "created_at")}
    stored = _insert_ignoring_duplicates(session, RejectionRow.__table__, {
        "id": identity, "repository": str(record.get("repository", "")),
        "chain_id": str((record.get("chain") or {}).get("id", "")),
        "policy": str(record.get("policy", "")), "score": float(record.get("score") or 0),
        "reason": reason, "appended_at": utcnow(),
        "verdict": json.dumps(verdict, ensure_ascii=False)})
    return Appended(identity, stored)
