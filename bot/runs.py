"""Rollout runs as `davinci rollouts` and the dashboard show them: each run with its chain's
repository, its state (`rollout.state`), its stages and the corpus record it produced."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chains.store import ChainRow
from corpus.store import TrajectoryRow
from rollout.state import ChainState, run_state
from rollout.store import RolloutRow, RolloutRunRow


@dataclass(frozen=True)
class StageView:
    pr: int
    verdict: str
    score: float
    attempts: int


@dataclass(frozen=True)
class RunView:
    id: str
    chain_id: str
    repository: str
    """The chain's repository; empty when the chain is no longer in the database."""
    length: int
    policy: str
    state: ChainState
    record_id: str | None = None
    """The corpus record of an accepted rollout (`davinci corpus show`), when it is there."""
    stages: tuple[StageView, ...] = field(default_factory=tuple)
    """The verdict of each stage, when the rollout ran."""

    @property
    def text(self) -> str:
        return self.state.describe()

    @property
    def updated_at(self) -> datetime | None:
        return self.state.updated_at

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "chain": self.chain_id, "repository": self.repository,
                "length": self.length, "policy": self.policy, "state": self.state.name,
                "state_text": self.text, "reason": self.state.reason, "score": self.state.score,
                "attempts": self.state.attempts,
                "retry_at": _iso(self.state.retry_at), "record_id": self.record_id,
                "stages": [vars(stage) for stage in self.stages],
                "updated_at": _iso(self.updated_at)}


def run_views(session: Session, runs: Sequence[RolloutRunRow]) -> list[RunView]:
    """``runs`` as they are shown, in the order given."""
    repositories = dict(session.execute(select(ChainRow.id, ChainRow.repository).where(
        ChainRow.id.in_({run.chain_id for run in runs}))).all())
    rollouts = {row.id: row for row in session.scalars(select(RolloutRow).where(
        RolloutRow.id.in_({run.rollout_id for run in runs if run.rollout_id is not None})))}
    in_corpus = set(session.scalars(select(TrajectoryRow.id).where(
        TrajectoryRow.id.in_({row.record_id for row in rollouts.values() if row.accepted}))))
    views = []
    for run in runs:
        rollout = rollouts.get(run.rollout_id) if run.rollout_id is not None else None
        record = rollout.record_id if rollout is not None else None
        views.append(RunView(run.id, run.chain_id, repositories.get(run.chain_id, ""),
                             run.chain_length, run.policy, run_state(run),
                             record if record in in_corpus else None,
                             _stages(rollout)))
    return views


def _stages(rollout: RolloutRow | None) -> tuple[StageView, ...]:
    if rollout is None:
        return ()
    return tuple(StageView(int(stage["pr"]), str(stage.get("verdict", "")),
                           float(stage.get("score") or 0.0), int(stage.get("attempts") or 0))
                 for stage in (rollout.summary or {}).get("stages", []))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
