"""The whole loop survives what production throws at it: a worker killed in the middle of a
rollout, and Redis restarted (or down) between deliveries."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

from bot.db import Database
from bot.runtime import QUEUES, ROLLOUT_QUEUE
from bot.sample import SampleRepository
from rollout.store import RolloutRunRow
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
from tests.services import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def merge(sim: GitHubSimulator, sample: SampleRepository, number: int) -> dict[str, object]:
    pr = next(p for p in sample.prs if p.number == number)
    sim.add_pull(REPO, number, sample.merge_commits[number], pr.title, pr.body,
                 author=pr.author, labels=pr.labels, closes=pr.closes)
    return merged_pr(sample, number)


def failed_jobs(redis: Redis) -> list[str]:
    return [job for name in QUEUES
            for job in FailedJobRegistry(queue=Queue(name, connection=redis)).get_job_ids()]


@pytest.mark.slow
def test_a_worker_killed_mid_rollout_is_replaced_and_the_trajectory_stored_once(
        world: tuple[GitHubSimulator, SampleRepository], env: dict[str, str], web: str,
        tmp_path: Path) -> None:
    sim, sample = world
    env = {**env, "DAVINCI_ABANDONED_AFTER": "6"}
    redis = Redis.from_url(env["REDIS_URL"])
    install(web)
    deliver(web, "pull_request", merge(sim, sample, 1), "d-1")
    work(env)
    deliver(web, "pull_request", merge(sim, sample, 3), "d-3")
    deliver(web, "pull_request", merge(sim, sample, 2), "d-2")  # chain 1 → 2: a rollout is due
    doomed = start_worker(env, tmp_path / "worker-1.log")
    rollouts = StartedJobRegistry(queue=Queue(ROLLOUT_QUEUE, connection=redis))
    wait_for(lambda: bool(rollouts.get_job_ids()), 180, "the rollout to start")
    stop_worker(doomed, kill=True)  # the worker, its work horse and its scheduler die
    time.sleep(2)
    assert trajectories(env["DATABASE_URL"]) == [], "killed before the rollout finished"
    [abandoned] = rollouts.get_job_ids()
    assert abandoned.startswith("rollout-")

    successor = start_worker(env, tmp_path / "worker-2.log")
    try:
        wait_for(lambda: trajectories(env["DATABASE_URL"]) == [(1, 2)] and idle(redis), 300,
                 "the abandoned rollout to be retried and finish")
    finally:
        stop_worker(successor)
    assert failed_jobs(redis) == []
    taken_over = (tmp_path / "worker-2.log").read_text()
    assert "davinci-rollouts: rollout textkit-dev/textkit" in taken_over, \
        "the second worker ran the abandoned rollout"
    assert "Acquired scheduler lock" in taken_over, "it took over the dead worker's scheduler"
    assert "callback for job" not in taken_over, "the abandoned job's failure callback ran"
    comment = [c.body for c in sim.comments_on(REPO, 2)]
    assert len(comment) == 1 and "**Rollout:** accepted (score 1.00)" in comment[0]
    database = Database(env["DATABASE_URL"])
    try:
        with database.session() as session:
            run = session.get(RolloutRunRow, abandoned)
            # Its state is the end of the retry; the killed attempt counts when the worker got
            # as far as starting it before it died.
            assert run is not None and run.state == "accepted" and run.attempts in (1, 2)
    finally:
        database.dispose()
    subprocess.run([sys.executable, "-m", "bot", "sandbox", "gc"], env=env, check=True,
                   capture_output=True)  # the killed rollout's container, if any


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    """A Redis with the production configuration (append-only file on)."""
    server = RedisServer(config=ROOT / "infra" / "redis.conf")
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(persistent_redis: RedisServer) -> str:
    return persistent_redis.url


@pytest.mark.slow
def test_redis_restarted_or_down_between_deliveries_loses_nothing(
        world: tuple[GitHubSimulator, SampleRepository], env: dict[str, str], web: str,
        persistent_redis: RedisServer) -> None:
    sim, sample = world
    install(web)
    work(env)
    for pr in sample.prs:  # no worker runs: every job waits in Redis across the restarts
        payload = merge(sim, sample, pr.number)
        if pr.number == 5:  # Redis is down when this one arrives
            persistent_redis.stop()
            answer = deliver(web, "pull_request", payload, f"d-{pr.number}")
            assert answer["status"] == "pending"
            persistent_redis.start()
            swept = subprocess.run([sys.executable, "-m", "bot", "sweep", "--json"], env=env,
                                   capture_output=True, text=True, check=True)
            assert '"processed": 1' in swept.stdout
        else:
            answer = deliver(web, "pull_request", payload, f"d-{pr.number}")
            assert answer["status"] == "enqueued"
        persistent_redis.stop()
        persistent_redis.start()
    redis = Redis.from_url(persistent_redis.url)
    assert Queue("davinci-mining", connection=redis).count == len(sample.prs)
    work(env)
    stored = trajectories(env["DATABASE_URL"])
    assert (1, 2, 4) in stored and (3, 5, 6) in stored
    assert idle(redis) and failed_jobs(redis) == []
    final = [c.body for c in sim.comments_on(REPO, 4)]
    assert len(final) == 1 and "**Rollout:** accepted (score 1.00)" in final[0]
