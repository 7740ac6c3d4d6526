"""Persistence of gold validations and rollout verdicts, with everything the verifier saw."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from rollout.agent import RolloutResult
from rollout.record import audit, trajectory_record, verdict_summary
from rollout.validation import TaskValidation


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ValidationRow(Base):
    __tablename__ = "task_validations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[str] = mapped_column(String(128), index=True)
    eligible: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    """TaskValidation.to_dict(): FAIL_TO_PASS, PASS_TO_PASS and both test logs per stage."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class RolloutRow(Base):
    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[str] = mapped_column(String(128), index=True)
    policy: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(255))
    exit_status: Mapped[str] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float)
    accepted: Mapped[bool] = mapped_column(Boolean)
    record_id: Mapped[str] = mapped_column(String(64), index=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    audit: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Validation, per-attempt test logs, outcomes, patches and judge answers."""
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


def save_validation(session: Session, validation: TaskValidation) -> int:
    row = ValidationRow(chain_id=validation.chain_id, eligible=validation.eligible,
                        reason=validation.reason, result=validation.to_dict())
    session.add(row)
    session.flush()
    return row.id


def save_rollout(session: Session, result: RolloutResult) -> int:
    record = trajectory_record(result)
    row = RolloutRow(chain_id=result.task.chain_id, policy=result.policy, model=result.model,
                     exit_status=result.exit_status, score=result.score,
                     accepted=result.accepted, record_id=record["id"],
                     summary=verdict_summary(result), audit=audit(result), record=record)
    session.add(row)
    session.flush()
    return row.id


def latest_rollout(session: Session, chain_id: str) -> RolloutRow | None:
    query = (select(RolloutRow).where(RolloutRow.chain_id == chain_id)
             .order_by(RolloutRow.id.desc()).limit(1))
    return session.scalars(query).first()
