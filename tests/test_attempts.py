"""Attempts of one rollout run: however many start and finish, the run keeps one verdict and
the corpus one trajectory.

A work horse can outlive its worker (its heartbeat stopped on a loaded machine, or the worker
was killed a moment before it forked the horse): rq then retries the job while the first
attempt still runs, and both finish.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.sample import build_sample_repository
from corpus.store import TrajectoryRow
from rollout.store import RolloutRow, RolloutRunRow, ValidationRow, mark_run
from tests.conftest import Davinci

RUN = "rollout-attempts-len3-replay"
ATTEMPT = """
import json, sys
from pathlib import Path
from bot.jobs.rollouts import roll_out_one
from bot.settings import Settings
outcome = roll_out_one(Settings.from_env(), Path(sys.argv[1]), sys.argv[2], "replay",
                       sys.argv[3])
print(json.dumps({"state": outcome.state, "record_id": outcome.record_id,
                  "rollout_id": outcome.rollout_id, "stored": outcome.stored}))
"""


def _attempts(count: int, clone: Path, chain: str, data: Path) -> list[dict[str, Any]]:
    """``count`` attempts of run RUN started at once, each in a process of its own."""
    env = {**os.environ, "DAVINCI_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    started = [subprocess.Popen([sys.executable, "-c", ATTEMPT, str(clone), chain, RUN],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(count)]
    outcomes = []
    for process in started:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    return outcomes


def _count(database: Database, table: Any, chain: str) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)
                                  .where(table.chain_id == chain)) or 0)


@pytest.mark.slow
def test_attempts_of_one_run_store_one_verdict_and_one_trajectory(tmp_path: Path,
                                                                   davinci: Davinci) -> None:
    sample = build_sample_repository(tmp_path / "textkit")
    mined = davinci("mine", "--git", str(sample.path), "--json", DATABASE_URL=None)
    assert mined.returncode == 0, mined.stderr[-3000:]
    chain = next(c["id"] for c in json.loads(mined.stdout)["chains"] if c["eligible"])
    data = tmp_path / "data"
    database = Database(f"sqlite:///{data / 'davinci.db'}")
    try:
        with database.session() as session:  # as enqueueing the job does
            mark_run(session, RUN, "queued", chain_id=chain, chain_length=3, policy="replay")

        together = _attempts(2, sample.path, chain, data)
        assert {o["state"] for o in together} == {"accepted"}
        assert len({(o["record_id"], o["rollout_id"]) for o in together}) == 1, together
        assert sorted(o["stored"] for o in together) == [False, True]
        assert _count(database, RolloutRow, chain) == 1, "one verdict, the first one stored"
        assert _count(database, TrajectoryRow, chain) == 1
        with database.session() as session:
            run = session.get(RolloutRunRow, RUN)
            assert run is not None and run.state == "accepted"
            assert run.rollout_id == together[0]["rollout_id"]
            # The job is retried once more: its worker was taken for dead.
            mark_run(session, RUN, "retrying", reason="the worker running it stopped")
        validations = _count(database, ValidationRow, chain)

        [retried] = _attempts(1, sample.path, chain, data)
        assert retried == {**together[0], "stored": False}
        assert _count(database, ValidationRow, chain) == validations, "not rolled out again"
        assert _count(database, RolloutRow, chain) == 1
        assert _count(database, TrajectoryRow, chain) == 1
        with database.session() as session:
            run = session.get(RolloutRunRow, RUN)
            assert run is not None and run.state == "accepted"
            mark_run(session, RUN, "queued")  # asked for anew: the next verdict is its own
            assert run.rollout_id is None
    finally:
        database.dispose()
