"""Enqueueing jobs exactly once: deterministic ids, checked and pushed atomically in Redis."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from redis import Redis
from rq import Callback, Queue, Retry
from rq.exceptions import DuplicateJobError

from handlers import JobSpec

RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
JOB_TIMEOUTS = {"davinci-mining": 30 * 60, "davinci-rollouts": 3 * 3600}
RETRY = Retry(max=3, interval=[10, 60, 300])
"""For infrastructure failures only: `bot.failures` takes a deterministic failure's retries."""
ON_FAILURE = Callback("bot.failures.on_job_failure", timeout=120)
_registered: WeakKeyDictionary[Redis, set[str]] = WeakKeyDictionary()
"""Queues this process has listed in rq's `rq:queues` set, per Redis client."""


def enqueue(redis: Redis, spec: JobSpec) -> bool:
    """Enqueue ``spec`` unless a job with its id is already known; True when enqueued.

    rq's unique enqueue checks the id, saves the job and pushes it in one Lua script, so two
    enqueuers racing (a request and the sweeper) cannot both push it, and nothing is left
    half-written. A job stays known for a day after it finished (a week after it failed).
    Raises redis' errors when Redis is unreachable, so the caller keeps the delivery pending
    for the sweeper.
    """
    queue = Queue(spec.queue, connection=redis)
    job = queue.create_job(
        spec.func, spec.args, job_id=spec.job_id, description=spec.description or None,
        timeout=JOB_TIMEOUTS.get(spec.queue, 1800), result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL, retry=RETRY, on_failure=ON_FAILURE)
    with redis.pipeline(transaction=False) as pipe:
        try:
            queue.enqueue_job(job, pipeline=pipe, unique=True)  # the script runs right away
        except DuplicateJobError:
            return False
        known = _registered.setdefault(redis, set())
        if spec.queue not in known:  # `rq info` lists the queues of rq:queues; once will do
            pipe.execute()
            known.add(spec.queue)
    return True
