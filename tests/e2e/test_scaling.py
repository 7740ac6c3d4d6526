"""Scaling out: two worker processes share one Redis and one PostgreSQL, on separate queues or
on the same queue, on one machine's disk or on two machines that share nothing else. Every job
runs once, none is lost, and the chains come out as if one worker had mined the PRs in merge
order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from sqlalchemy import create_engine, select, text

from bot.db import Database
from bot.runtime import MINING_QUEUE, QUEUES, ROLLOUT_QUEUE
from bot.sample import SampleRepository
from chains.store import ChainRow
from rollout.store import RolloutRow
from tests.e2e.loop import (
    REPO,
    deliver,
    idle,
    install,
    merged_pr,
    start_worker,
    stop_worker,
    trajectories,
    wait_for,
    work,
)
from tests.github_sim import GitHubSimulator


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A database of its own on the shared PostgreSQL server."""
    name = f"e2e_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def finished(redis: Redis, queue: str) -> list[str]:
    return FinishedJobRegistry(queue=Queue(queue, connection=redis)).get_job_ids()


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["same queue", "separate machines"])
def test_two_workers_share_the_work_without_duplicates_or_losses(
        world: tuple[GitHubSimulator, SampleRepository], env: dict[str, str], web: str,
        tmp_path: Path, layout: str) -> None:
    sim, sample = world
    assert env["DATABASE_URL"].startswith("postgresql")
    redis = Redis.from_url(env["REDIS_URL"])
    install(web)
    work(env)
    queues: list[tuple[str, ...]] = ([(), ()] if layout == "same queue"
                                     else [(MINING_QUEUE,), (ROLLOUT_QUEUE,)])
    # Separate machines: one worker per queue, each with a data folder of its own (mirrors,
    # journals); the rollout worker fetches the chains' commits from GitHub itself.
    machines = [{**env, "DAVINCI_DATA_DIR": str(tmp_path / f"machine-{i}")}
                if layout == "separate machines" else env for i in range(2)]
    workers = [start_worker(machines[i], tmp_path / f"worker-{i}.log", *names)
               for i, names in enumerate(queues)]
    try:
        for pr in sample.prs:  # GitHub delivers while both workers are busy
            sim.add_pull(REPO, pr.number, sample.merge_commits[pr.number], pr.title, pr.body,
                         author=pr.author, labels=pr.labels, closes=pr.closes)
            deliver(web, "pull_request", merged_pr(sample, pr.number), f"d-{pr.number}")

        def done() -> bool:
            mined = {j for j in finished(redis, MINING_QUEUE) if j.startswith("mine-")}
            return len(mined) == len(sample.prs) and idle(redis) \
                and len(finished(redis, ROLLOUT_QUEUE)) > 0
        wait_for(done, 400, "both workers to finish the work")
    finally:
        for process in workers:
            stop_worker(process)
    for name in QUEUES:
        assert FailedJobRegistry(queue=Queue(name, connection=redis)).get_job_ids() == []
    mined = [j for j in finished(redis, MINING_QUEUE) if j.startswith("mine-")]
    assert len(mined) == len(set(mined)) == len(sample.prs)
    database = Database(env["DATABASE_URL"])
    try:
        with database.session() as session:
            chains = sorted(tuple(row.prs) for row in session.scalars(select(ChainRow)))
            rollouts = session.scalars(select(RolloutRow)).all()
    finally:
        database.dispose()
    assert chains == [(1, 2, 4), (3, 5, 6), (7,)], "the same chains as one worker in order"
    # Every rollout job ran exactly once: one verdict per finished rollout job.
    assert len(rollouts) == len(finished(redis, ROLLOUT_QUEUE))
    stored = trajectories(env["DATABASE_URL"])
    assert (1, 2, 4) in stored and (3, 5, 6) in stored
    for pr in sample.prs:  # one status comment per chained PR, however the workers raced
        assert len(sim.comments_on(REPO, pr.number)) == (0 if pr.number == 7 else 1)
    final = sim.comments_on(REPO, 6)[0].body
    assert "#3 → #5 → **#6**" in final and "**Rollout:** accepted (score 1.00)" in final
    if layout == "separate machines":
        for machine in ("machine-0", "machine-1"):  # each fetched its own mirror
            assert (tmp_path / machine / "mirrors" / "textkit-dev" / "textkit.git"
                    / "HEAD").exists()
