"""bot.queue: a job saved from our template is the job rq itself would save, and once only."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from bot.queue import FAILURE_TTL, JOB_TIMEOUTS, ON_FAILURE, RESULT_TTL, RETRY, enqueue
from handlers import JobSpec

STAMPS = (b"created_at", b"enqueued_at")


def test_a_job_is_saved_as_rqs_own_unique_enqueue_saves_it(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    ours = JobSpec("davinci-mining", "bot.jobs.mining.mine_pull_request",
                   (2311213, "textkit-dev/textkit", 4), "mine-ours", "mine textkit-dev/textkit#4")
    assert enqueue(redis, ours) is True
    queue = Queue("davinci-mining", connection=redis)
    theirs = queue.create_job(ours.func, ours.args, job_id="mine-theirs",
                              description=ours.description,
                              timeout=JOB_TIMEOUTS["davinci-mining"], result_ttl=RESULT_TTL,
                              failure_ttl=FAILURE_TTL, retry=RETRY, on_failure=ON_FAILURE)
    queue.enqueue_job(theirs, unique=True)
    saved = {who: redis.hgetall(f"rq:job:mine-{who}") for who in ("ours", "theirs")}
    assert {k: v for k, v in saved["ours"].items() if k not in STAMPS} == {
        k: v for k, v in saved["theirs"].items() if k not in STAMPS}
    assert all(saved["ours"][stamp] for stamp in STAMPS)
    assert queue.job_ids == ["mine-ours", "mine-theirs"]
    assert redis.smembers("rq:queues") == {b"rq:queue:davinci-mining"}
    job = queue.fetch_job("mine-ours")
    assert job is not None and (job.func_name, job.args, job.retries_left, job.timeout) == (
        ours.func, ours.args, 3, JOB_TIMEOUTS["davinci-mining"])


def test_a_known_job_id_is_not_pushed_again(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    spec = JobSpec("davinci-rollouts", "bot.jobs.rollouts.rollout_chain", ("1-1-c", "replay"),
                   "rollout-1-1-c")
    assert enqueue(redis, spec) is True
    assert enqueue(redis, spec) is False
    queue = Queue("davinci-rollouts", connection=redis)
    assert queue.job_ids == ["rollout-1-1-c"]
    job = queue.fetch_job("rollout-1-1-c")
    assert job is not None and job.description == (
        "bot.jobs.rollouts.rollout_chain('1-1-c', 'replay')")  # rq's own, when none is given
    assert job.timeout == JOB_TIMEOUTS["davinci-rollouts"]
