"""Enqueueing jobs exactly once: deterministic ids plus a Redis marker per id."""

from __future__ import annotations

import contextlib

from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry
from rq.job import Job

from handlers import JobSpec

MARKER_TTL = 7 * 24 * 3600
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
JOB_TIMEOUTS = {"davinci-mining": 30 * 60, "davinci-rollouts": 3 * 3600}
RETRY = Retry(max=3, interval=[10, 60, 300])
"""For infrastructure failures only: `bot.failures` takes a deterministic failure's retries."""
ON_FAILURE = Callback("bot.failures.on_job_failure", timeout=120)


def enqueue(redis: Redis, spec: JobSpec, force: bool = False) -> bool:
    """Enqueue ``spec`` unless a job with its id is already known; True when enqueued.

    The marker (SET NX) keeps two enqueuers racing (a request and the sweeper) from both
    pushing the job; a marker whose job does not exist (an enqueue that failed half-way) does
    not block. Raises redis' errors when Redis is unreachable, so the caller keeps the
    delivery pending for the sweeper.
    """
    marker = f"davinci:enqueued:{spec.job_id}"
    fresh = redis.set(marker, "1", nx=True, ex=MARKER_TTL)
    if not fresh and not force and Job.exists(spec.job_id, connection=redis):
        return False
    try:
        queue = Queue(spec.queue, connection=redis)
        data = Queue.prepare_data(
            spec.func, spec.args, job_id=spec.job_id, description=spec.description or None,
            timeout=JOB_TIMEOUTS.get(spec.queue, 1800), result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL, retry=RETRY, on_failure=ON_FAILURE)
        with redis.pipeline() as pipe:  # the job and its place in the queue: one round trip
            queue.enqueue_many([data], pipeline=pipe)
            pipe.execute()
    except BaseException:
        with contextlib.suppress(RedisError):
            redis.delete(marker)
        raise
    return True
