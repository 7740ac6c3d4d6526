"""A chain's state, from one source: its mined row and its newest rollout run.

mined → (not eligible: why) | queued → validating → running (stage k of n) → accepted |
rejected (why) | not eligible (why) | failed (why) | retrying (why, at when).

`davinci chains list/show`, `davinci rollouts`, the PR comment and the dashboard all show a
chain through :func:`chain_states` and :meth:`ChainState.describe`, so they never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from chains.store import ChainRow
from rollout.store import RolloutRunRow, latest_runs

LIVE = ("queued", "validating", "running", "retrying")


@dataclass(frozen=True)
class ChainState:
    name: str
    """`mined`, `not_eligible`, `queued`, `validating`, `running`, `retrying`, `accepted`,
    `rejected` or `failed`."""
    reason: str = ""
    stage: int | None = None
    stages: int | None = None
    score: float | None = None
    retry_at: datetime | None = None
    run_id: str | None = None
    policy: str | None = None
    rollout_id: int | None = None
    attempts: int = 0
    updated_at: datetime | None = None

    @property
    def live(self) -> bool:
        """A rollout is waiting, running or waiting to be retried."""
        return self.name in LIVE

    def describe(self) -> str:
        """The state in a few words, the same on every surface."""
        name = self.name.replace("_", " ")
        if self.name == "mined":
            return "eligible, not rolled out yet"
        if self.name == "running" and self.stage and self.stages:
            return f"running (stage {self.stage} of {self.stages})"
        if self.name == "accepted":
            return f"accepted (score {self.score or 0:.2f})"
        if self.name == "retrying":
            when = (f"failed, retrying at {minute(self.retry_at)}"
                    if self.retry_at else "failed, retrying")
            return f"{when}: {self.reason}" if self.reason else when
        if self.name == "rejected" and self.score is not None:
            return f"rejected (score {self.score:.2f}): {self.reason}".rstrip(": ")
        return f"{name}: {self.reason}" if self.reason else name


def chain_states(session: Session, chains: Sequence[ChainRow],
                 mining_reasons: dict[str, str] | None = None) -> dict[str, ChainState]:
    """Each chain's state. ``mining_reasons``: why a chain mining found not eligible (chain
    id → words), shown for chains no rollout has looked at."""
    runs = latest_runs(session, [chain.id for chain in chains])
    return {chain.id: state_of(chain, runs.get(chain.id), (mining_reasons or {}).get(chain.id))
            for chain in chains}


def state_of(chain: ChainRow, run: RolloutRunRow | None,
             mining_reason: str | None = None) -> ChainState:
    if run is None or run.chain_length != len(chain.prs):
        if not chain.eligible:  # mining's verdict; a rollout of a shorter version is history
            return ChainState("not_eligible", mining_reason or "no rollout is due")
        return ChainState("mined")
    return run_state(run)


def run_state(run: RolloutRunRow) -> ChainState:
    """Where one run is (`davinci rollouts`), whether or not it is its chain's newest."""
    return ChainState(run.state, run.reason or "", stage=run.stage, stages=run.stages,
                      score=run.score, retry_at=run.retry_at, run_id=run.id,
                      policy=run.policy, rollout_id=run.rollout_id, attempts=run.attempts or 0,
                      updated_at=run.updated_at)


def mining_reasons(documents: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Mining's own words for each chain (`chains.queries.chain_document`'s ``why``), as
    :func:`chain_states` takes them."""
    return {str(doc["id"]): str(doc["why"]).removeprefix("not eligible: ")
            for doc in documents}


def minute(moment: datetime) -> str:
    """A moment as every surface writes it: to the minute, in UTC (naive means UTC)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{utc:%Y-%m-%d %H:%M} UTC"
