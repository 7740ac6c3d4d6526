"""Enqueueing jobs exactly once: deterministic ids, checked and pushed atomically in Redis."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from redis import Redis
from rq import Callback, Queue, Retry
from rq.job import Job, JobStatus
from rq.scripts import get_unique_enqueue_script
from rq.utils import get_call_string, now, utcformat

from handlers import JobSpec

RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
JOB_TIMEOUTS = {"davinci-mining": 30 * 60, "davinci-rollouts": 3 * 3600}
RETRY = Retry(max=3, interval=[10, 60, 300])
"""For infrastructure failures only: `bot.failures` takes a deterministic failure's retries."""
ON_FAILURE = Callback("bot.failures.on_job_failure", timeout=120)
OWN_FIELDS = ("created_at", "enqueued_at", "data", "description")
"""What differs between two jobs of one queue in rq's job hash; the rest is the template's."""


@dataclass(frozen=True)
class Template:
    """rq's job hash, as rq itself writes it, for a job of one queue with our options (timeout,
    TTLs, retries, failure callback), made once per process; an enqueue fills in its own
    fields (``OWN_FIELDS``) instead of building and serialising a whole rq Job."""

    queue_key: str
    fields: tuple[bytes, ...]
    """Field, value, field, value, …: the arguments of the HSET in rq's unique-enqueue script."""
    slots: dict[str, int]
    """Where each of ``OWN_FIELDS``'s values is in ``fields``."""
    serializer: Any

    @classmethod
    def made_by_rq(cls, queue: Queue) -> Template:
        job = queue.create_job("builtins.print", job_id="template", description="template",
                               timeout=JOB_TIMEOUTS.get(queue.name, 1800),
                               result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL, retry=RETRY,
                               on_failure=ON_FAILURE, status=JobStatus.QUEUED)
        saved = {**job.to_dict(), "origin": queue.name, "enqueued_at": "",
                 "status": JobStatus.QUEUED.value}
        fields: list[bytes] = []
        for name, value in saved.items():  # as rq's script arguments: None is left out
            if value is not None:
                fields += [name.encode(), value if isinstance(value, bytes) else
                           str(value.value if isinstance(value, JobStatus) else value).encode()]
        slots = {name: fields.index(name.encode()) + 1 for name in OWN_FIELDS}
        return cls(queue.key, tuple(fields), slots, job.serializer)

    def arguments(self, spec: JobSpec) -> list[Any]:
        """The script's arguments for ``spec``: its id, push to the tail, no TTL, its hash."""
        fields: list[Any] = list(self.fields)
        fields[self.slots["created_at"]] = fields[self.slots["enqueued_at"]] = utcformat(now())
        fields[self.slots["data"]] = zlib.compress(self.serializer.dumps(
            (spec.func, None, spec.args, {})))
        fields[self.slots["description"]] = spec.description or get_call_string(
            spec.func, spec.args, {}, max_length=75)
        return [spec.job_id, "R", -1, *fields]


_templates: WeakKeyDictionary[Redis, dict[str, Template]] = WeakKeyDictionary()
"""Per Redis client, per queue: made when this process first enqueues there."""


def enqueue(redis: Redis, spec: JobSpec) -> bool:
    """Enqueue ``spec`` unless a job with its id is already known; True when enqueued.

    rq's unique-enqueue script checks the id, saves the job and pushes it in one round trip,
    so two enqueuers racing (a request and the sweeper) cannot both push it, and nothing is
    left half-written. A job stays known for a day after it finished (a week after it failed).
    Raises redis' errors when Redis is unreachable, so the caller keeps the delivery pending
    for the sweeper.
    """
    template = _template(redis, spec.queue)
    script = get_unique_enqueue_script(redis)
    return bool(script(keys=[Job.key_for(spec.job_id), template.queue_key],
                       args=template.arguments(spec)))


def _template(redis: Redis, name: str) -> Template:
    known = _templates.setdefault(redis, {})
    template = known.get(name)
    if template is None:
        queue = Queue(name, connection=redis)
        # `rq info` and workers listening on every queue find it in rq:queues; once will do.
        redis.sadd(Queue.redis_queues_keys, queue.key)
        template = known[name] = Template.made_by_rq(queue)
    return template
