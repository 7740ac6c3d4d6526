"""Persistence of gold validations and rollout verdicts, with everything the verifier saw."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from chains.queries import AmbiguousPrefix, by_prefix
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


class RolloutRunRow(Base):
    """One rollout of one chain at one length, from the moment it is asked for to its end.

    The one place a chain's rollout state is kept: the job (or the command) writes each step
    here, on whatever machine it runs, and `chains list`, the PR comment and the dashboard
    read it (`rollout.state`).
    """

    __tablename__ = "rollout_runs"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    """The rq job id, or `local-…` for a rollout run by a command."""
    chain_id: Mapped[str] = mapped_column(String(128), index=True)
    chain_length: Mapped[int] = mapped_column(Integer)
    policy: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    """One of RUN_STATES."""
    stage: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    rollout_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The RolloutRow of a rollout that ran to a verdict."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """How many times a worker started it (retries after infrastructure failures)."""
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow,
                                                 index=True)


RUN_STATES = ("queued", "validating", "running", "retrying", "accepted", "rejected",
              "not_eligible", "failed")
ENDED = ("accepted", "rejected", "not_eligible", "failed")


def mark_run(session: Session, run_id: str, state: str, *, chain_id: str | None = None,
             chain_length: int | None = None, policy: str | None = None,
             **fields: Any) -> RolloutRunRow:
    """Record that run ``run_id`` reached ``state`` (created on its first mark, which must
    name the chain, its length and the policy). ``fields``: stage, stages, reason, score,
    rollout_id, retry_at, attempts."""
    if state not in RUN_STATES:
        raise ValueError(f"unknown rollout state {state!r}")
    row = session.get(RolloutRunRow, run_id)
    if row is None:
        if chain_id is None or chain_length is None or policy is None:
            raise ValueError(f"run {run_id} is new: name its chain, length and policy")
        row = RolloutRunRow(id=run_id, chain_id=chain_id, chain_length=chain_length,
                            policy=policy, state=state, attempts=0, reason="")
        session.add(row)
    else:
        for name, value in (("chain_id", chain_id), ("chain_length", chain_length),
                            ("policy", policy)):
            if value is not None:
                setattr(row, name, value)
    row.state = state
    if state in ("queued", "validating"):
        row.stage = row.stages = row.score = row.retry_at = None
        row.reason = ""
    if state == "queued":  # asked for anew: the next attempt may reach a verdict of its own
        row.rollout_id = None
    for name, value in fields.items():
        if not hasattr(RolloutRunRow, name):
            raise TypeError(f"a run has no field {name!r}")
        setattr(row, name, value)
    row.updated_at = _utcnow()
    session.flush()
    return row


def count_attempt(session: Session, run_id: str, chain_id: str, chain_length: int,
                  policy: str) -> RolloutRunRow:
    """A worker starts run ``run_id`` (again): one more attempt, whatever happens next."""
    row = session.get(RolloutRunRow, run_id)
    if row is None:
        row = mark_run(session, run_id, "queued", chain_id=chain_id, chain_length=chain_length,
                       policy=policy)
    row.attempts = (row.attempts or 0) + 1
    session.flush()
    return row


def run_verdict(session: Session, run_id: str) -> RolloutRow | None:
    """The verdict an attempt of run ``run_id`` already reached, if any.

    An attempt can outlive the worker that started it (a work horse still running when its
    worker's heartbeat stopped), and the job is retried meanwhile: the retry finds the verdict
    here instead of rolling the chain out again."""
    run = session.get(RolloutRunRow, run_id)
    if run is None or run.rollout_id is None:
        return None
    return session.get(RolloutRow, run.rollout_id)


def claim_verdict(session: Session, run_id: str, rollout_id: int) -> bool:
    """Make RolloutRow ``rollout_id`` the verdict of run ``run_id``, unless another attempt
    of the run claimed one first: one verdict, and one trajectory, per run.

    A conditional update, so two attempts finishing at once cannot both claim: PostgreSQL
    re-checks the condition once the first one commits, SQLite lets one writer in at a time.
    """
    claimed = session.execute(
        update(RolloutRunRow)
        .where(RolloutRunRow.id == run_id, RolloutRunRow.rollout_id.is_(None))
        .values(rollout_id=rollout_id, updated_at=_utcnow())
        .execution_options(synchronize_session=False))
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def latest_runs(session: Session, chain_ids: list[str]) -> dict[str, RolloutRunRow]:
    """The newest run of each chain that has one."""
    newest: dict[str, RolloutRunRow] = {}
    if not chain_ids:
        return newest
    for row in session.scalars(select(RolloutRunRow).where(
            RolloutRunRow.chain_id.in_(chain_ids))):
        current = newest.get(row.chain_id)
        if current is None or (_aware(row.updated_at), row.id) > (_aware(current.updated_at),
                                                                  current.id):
            newest[row.chain_id] = row
    return newest


def recent_runs(session: Session, limit: int = 50,
                repository: str | None = None) -> list[RolloutRunRow]:
    """The most recently updated runs, newest first."""
    query = select(RolloutRunRow).order_by(RolloutRunRow.updated_at.desc(),
                                           RolloutRunRow.id.desc()).limit(limit)
    if repository is not None:
        from chains.store import ChainRow

        query = query.where(RolloutRunRow.chain_id.in_(
            select(ChainRow.id).where(ChainRow.repository == repository)))
    return list(session.scalars(query))


class AmbiguousRun(AmbiguousPrefix):
    """A prefix names more than one run."""


def find_run(session: Session, run_id: str) -> RolloutRunRow | None:
    """The run with this id or id prefix; None when there is none; AmbiguousRun when the
    prefix names several."""
    found: RolloutRunRow | None = by_prefix(session, RolloutRunRow, run_id, AmbiguousRun)
    return found


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


def not_eligible_verdict(chain: str, policy: str, reason: str) -> dict[str, Any]:
    """The verdict document of a chain that was not rolled out (`davinci rollout --json`)."""
    return {"chain": chain, "accepted": False, "score": 0.0, "policy": policy, "stages": [],
            "tool_calls": 0, "tokens": 0, "eligible": False, "reason": reason}


def latest_verdicts(session: Session, chain_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest verdict of each chain that has one: its rollout's summary, or the reason it
    was not eligible. A chain whose newest row is a passed validation (its rollout never
    finished) has none."""
    newest: dict[str, ValidationRow | RolloutRow] = {}
    rows: list[ValidationRow | RolloutRow] = [
        *session.scalars(select(ValidationRow).where(ValidationRow.chain_id.in_(chain_ids))),
        *session.scalars(select(RolloutRow).where(RolloutRow.chain_id.in_(chain_ids)))]
    for row in rows:  # a rollout's row follows its validation's, so it wins a tie
        current = newest.get(row.chain_id)
        if current is None or _aware(row.created_at) >= _aware(current.created_at):
            newest[row.chain_id] = row
    found = {}
    for chain_id, row in newest.items():
        if isinstance(row, RolloutRow):
            found[chain_id] = {**row.summary, "eligible": True, "record_id": row.record_id}
        elif not row.eligible:
            found[chain_id] = not_eligible_verdict(chain_id, "", row.reason)
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
