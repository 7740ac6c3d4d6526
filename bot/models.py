"""Tables the App itself owns: installations, repositories and the webhook inbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Installation(Base):
    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_login: Mapped[str] = mapped_column(String(255))
    account_type: Mapped[str] = mapped_column(String(32), default="User")
    state: Mapped[str] = mapped_column(String(16), default="active")
    """`active`, `suspended` or `deleted`."""
    permissions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    full_name: Mapped[str] = mapped_column(String(255), unique=True)
    installation_id: Mapped[int | None] = mapped_column(BigInteger, index=True, nullable=True)
    private: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)
    """False when `.github/davinci.yml` says `enabled: false`; set by the mining job."""
    removed: Mapped[bool] = mapped_column(default=False)
    """True once the repository was removed from the installation (or the App uninstalled)."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class Delivery(Base):
    """The webhook inbox: one row per accepted delivery, stored before anything is enqueued."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_received", "status", "received_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The `X-GitHub-Delivery` GUID."""
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64), nullable=True)
    installation_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    repository: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """`enqueued` (routed; its job ids are recorded, then the jobs enqueued), `ignored`
    (routed, no job), `failed` (its handler raised; a redelivery works it again) or `pending`
    (for the sweeper: Redis was down, or its jobs were not found there)."""
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
