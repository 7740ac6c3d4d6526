"""Failed rollout jobs in real worker processes: an infrastructure failure is retried later, a
deterministic one is recorded once and never retried, and in both cases the chain's run and
its PR comment say what happened."""

from __future__ import annotations

from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from bot.db import Database
from bot.queue import enqueue
from bot.runtime import MINING_QUEUE, ROLLOUT_QUEUE
from bot.sample import SampleRepository
from handlers import JobSpec
from rollout.store import RolloutRunRow
from tests.e2e.loop import REPO, deliver, install, merged_pr, work
from tests.github_sim import GitHubSimulator

ROLLOUT_FUNC = "bot.jobs.rollouts.rollout_chain"


def _merge(sim: GitHubSimulator, sample: SampleRepository, web: str, env: dict[str, str],
           numbers: tuple[int, ...]) -> None:
    for pr in (p for p in sample.prs if p.number in numbers):
        sim.add_pull(REPO, pr.number, sample.merge_commits[pr.number], pr.title, pr.body,
                     author=pr.author, labels=pr.labels, closes=pr.closes)
        deliver(web, "pull_request", merged_pr(sample, pr.number), f"d-{pr.number}")
        work(env, MINING_QUEUE)


def _run(env: dict[str, str], job_id: str) -> RolloutRunRow:
    database = Database(env["DATABASE_URL"])
    try:
        with database.session() as session:
            row = session.get(RolloutRunRow, job_id)
            assert row is not None, f"no run recorded for {job_id}"
            session.expunge(row)
            return row
    finally:
        database.dispose()


def test_a_fetch_that_fails_is_retried_later_and_the_comment_says_so(
        world: tuple[GitHubSimulator, SampleRepository], env: dict[str, str],
        web: str, tmp_path: Path) -> None:
    sim, sample = world
    install(web)
    work(env)
    _merge(sim, sample, web, env, (1, 2))  # #2 builds on #1: an eligible chain of two
    redis = Redis.from_url(env["REDIS_URL"])
    queue = Queue(ROLLOUT_QUEUE, connection=redis)
    [job_id] = queue.get_job_ids()
    assert _run(env, job_id).state == "queued"
    # A machine with a disk of its own must fetch the repository, and the git server is away
    # for a while: infrastructure, worth a retry.
    sim.repos[REPO.lower()].clone_url = str(tmp_path / "git-server-away" / "textkit.git")
    elsewhere = {**env, "DAVINCI_DATA_DIR": str(tmp_path / "other-machine")}
    work(elsewhere, ROLLOUT_QUEUE)
    assert job_id in ScheduledJobRegistry(queue=queue).get_job_ids(), "retried later"
    assert job_id not in FailedJobRegistry(queue=queue).get_job_ids()
    run = _run(env, job_id)
    assert run.state == "retrying" and run.retry_at is not None and run.attempts == 1
    assert run.reason.startswith("fetching the repository failed (MirrorError")
    [comment] = sim.comments_on(REPO, 2)
    assert "**Rollout:** failed, retrying at " in comment.body
    assert "UTC: fetching the repository failed" in comment.body
    assert Job.fetch(job_id, connection=redis).retries_left == 2


def test_a_deterministic_failure_is_recorded_once_and_not_retried(
        world: tuple[GitHubSimulator, SampleRepository], env: dict[str, str],
        web: str) -> None:
    sim, sample = world
    install(web)
    work(env)
    _merge(sim, sample, web, env, (1, 2))
    redis = Redis.from_url(env["REDIS_URL"])
    queue = Queue(ROLLOUT_QUEUE, connection=redis)
    [queued] = queue.get_job_ids()
    chain_id = str(Job.fetch(queued, connection=redis).args[0])
    queue.empty()
    # The llm policy on a worker that has no model configured: the same every time.
    spec = JobSpec(ROLLOUT_QUEUE, ROLLOUT_FUNC, (chain_id, "llm"), "rollout-llm-test", "test")
    assert enqueue(redis, spec)
    plain = {k: v for k, v in env.items() if not k.startswith("LLM_")}
    work(plain, ROLLOUT_QUEUE)
    assert FailedJobRegistry(queue=queue).get_job_ids() == ["rollout-llm-test"]
    assert ScheduledJobRegistry(queue=queue).get_job_ids() == [], "not retried"
    run = _run(env, "rollout-llm-test")
    assert run.state == "failed" and run.retry_at is None
    assert "the llm policy needs LLM_BASE_URL and LLM_MODEL" in run.reason
    [comment] = sim.comments_on(REPO, 2)
    assert "**Rollout:** failed: the rollout cannot be done as asked" in comment.body
    assert "retrying" not in comment.body
