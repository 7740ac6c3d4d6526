"""Chains in each state a rollout can leave them, written through the real store functions;
the retrying one by a real rq worker whose job failed on infrastructure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy.orm import Session

from bot.jobs.rollouts import enqueue_rollout
from bot.models import Delivery
from bot.runtime import ROLLOUT_QUEUE, Runtime
from chains.mining import to_chain
from chains.store import ChainRow, PullRequestRow
from corpus.store import append
from rollout.store import RolloutRow, mark_run
from tests.corpus.records import make_record

REPOSITORY = "textkit-dev/textkit"
NO_STAGE = "no verifiable stage (PR #12: tests do not run)"
NO_ENVIRONMENT = "the environment could not be built: pip install exited with 1"


@dataclass(frozen=True)
class Arranged:
    accepted: str
    """Chain ids, one per state."""
    not_eligible: str
    no_environment: str
    retrying: str
    unready: str
    """Mining found it not eligible; no rollout looked at it."""
    mined: str
    """Eligible, never rolled out."""
    accepted_run: str
    retrying_job: str
    record_id: str


def arrange_states(runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Arranged:
    chains = {"accepted": "10-acc", "not_eligible": "11-noverify", "no_environment": "13-noenv",
              "retrying": "14-retry", "unready": "15-untested", "mined": "16-fresh"}
    with runtime.db.session() as session:
        for number, (name, chain_id) in enumerate(chains.items()):
            first = 20 + 2 * number
            session.add(ChainRow(id=chain_id, repository=REPOSITORY, prs=[first, first + 1],
                                 kinds=["references"], eligible=name != "unready"))
            for pr in (first, first + 1):
                session.add(PullRequestRow(
                    repository=REPOSITORY, number=pr, title=f"Change {pr}", title_key=f"c{pr}",
                    base_commit=f"{pr:040x}", merge_commit=f"{pr + 100:040x}",
                    touches_tests=name != "unready"))
        record_id = append(session, make_record(31)).id
        rollout = RolloutRow(chain_id=chains["accepted"], policy="replay", model="replay",
                             exit_status="submitted", score=0.9, accepted=True,
                             record_id=record_id, audit={}, record={}, summary={"stages": [
                                 {"pr": 20, "attempts": 1, "score": 1.0, "verdict": "resolved"},
                                 {"pr": 21, "attempts": 2, "score": 0.8, "verdict": "resolved"}]})
        session.add(rollout)
        session.flush()
        _run(session, "local-acc-1", chains["accepted"], "accepted", score=0.9,
             rollout_id=rollout.id, stages=2)
        _run(session, "local-noverify-1", chains["not_eligible"], "not_eligible",
             reason=NO_STAGE)
        _run(session, "local-noenv-1", chains["no_environment"], "not_eligible",
             reason=NO_ENVIRONMENT)
    job_id = _retrying_job(runtime, chains["retrying"], tmp_path, monkeypatch)
    with runtime.db.session() as session:
        session.add(Delivery(id="d-retry", event="pull_request", action="closed",
                             repository=REPOSITORY, status="enqueued", payload="{}",
                             job_ids=[job_id], received_at=datetime(2026, 11, 3, tzinfo=UTC)))
    return Arranged(**chains, accepted_run="local-acc-1", retrying_job=job_id,
                    record_id=record_id)


def _run(session: Session, run_id: str, chain_id: str, state: str, **fields: object) -> None:
    mark_run(session, run_id, "validating", chain_id=chain_id, chain_length=2, policy="replay")
    mark_run(session, run_id, state, **fields)


def _retrying_job(runtime: Runtime, chain_id: str, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> str:
    """Enqueue the chain's rollout as the App does and let a real worker run it: the mirror
    it must fetch from is not there, an infrastructure failure, so rq schedules a retry."""
    for key, value in {"REDIS_URL": runtime.settings.redis_url, "DATABASE_URL": runtime.db.url,
                       "DAVINCI_DATA_DIR": str(tmp_path / "worker"),
                       "DAVINCI_MIRROR_URL": str(tmp_path / "no-mirror-here")}.items():
        monkeypatch.setenv(key, value)
    with runtime.db.session() as session:
        row = session.get(ChainRow, chain_id)
        assert row is not None
        chain = to_chain(row)
    job_id = enqueue_rollout(runtime, chain)
    assert job_id is not None
    redis = Redis.from_url(runtime.settings.redis_url)
    try:
        SimpleWorker([Queue(ROLLOUT_QUEUE, connection=redis)], connection=redis).work(burst=True)
    finally:
        redis.close()
    return job_id
