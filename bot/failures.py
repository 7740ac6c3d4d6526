"""Which job failures are worth retrying: one table, applied to every job when it raises.

*Infrastructure* failures (a service away for a while: the model server, the Docker engine,
Redis, the database, GitHub's 5xx and rate limits, the network) are retried with rq's
back-off. *Deterministic* ones (the same input fails the same way: a chain that cannot be
rolled out, a refused request, a bad configuration, a bug) are recorded once with their reason
and not retried, so a job never spends hours repeating what cannot change. An exception the
table does not name counts as deterministic: a bug reruns the same way.

rq calls :func:`on_job_failure` (each job's `on_failure` callback, set by `bot.queue`) before
it decides about a retry; for a deterministic failure it takes the job's retries away. A job
module that must record its failures somewhere (the rollout run and the PR comment) registers
a function in :data:`AFTER_FAILURE` under its rq function name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import structlog
from docker.errors import APIError
from github import GithubException, RateLimitExceededException
from redis.exceptions import RedisError
from requests import RequestException
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.pipeline import PipelineError
from chains.mining import GraphChanged
from chains.mirror import MirrorError
from rollout.llm import LLMRefused, LLMUnavailable
from rollout.task import TaskError
from sandbox.base import SandboxError, SandboxUnavailable

log = structlog.get_logger(__name__)

INFRASTRUCTURE = "infrastructure"
DETERMINISTIC = "deterministic"


def _github(exc: BaseException) -> str:
    status = getattr(exc, "status", 0) or 0
    return INFRASTRUCTURE if status >= 500 or status in (403, 429) else DETERMINISTIC


def _docker(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", 0) or 0
    return INFRASTRUCTURE if status >= 500 else DETERMINISTIC


# (exception type, class or a function deciding it, what it means) — the first match wins.
FAILURE_CLASSES: tuple[tuple[type[BaseException], str | Callable[[BaseException], str], str],
                       ...] = (
    (LLMUnavailable, INFRASTRUCTURE, "the model server did not answer"),
    (LLMRefused, DETERMINISTIC, "the model server refused the request"),
    (SandboxUnavailable, INFRASTRUCTURE, "no Docker engine answered"),
    (APIError, _docker, "the Docker engine answered with an error"),
    (PipelineError, DETERMINISTIC, "the rollout cannot be done as asked"),
    (TaskError, DETERMINISTIC, "the chain cannot be made into a task"),
    (SandboxError, DETERMINISTIC, "the sandbox refused the work"),
    (RedisError, INFRASTRUCTURE, "Redis did not answer"),
    (OperationalError, INFRASTRUCTURE, "the database did not answer"),
    (DBAPIError, lambda e: INFRASTRUCTURE if getattr(e, "connection_invalidated", False)
     else DETERMINISTIC, "the database refused a statement"),
    (RateLimitExceededException, INFRASTRUCTURE, "GitHub's rate limit"),
    (GithubException, _github, "GitHub answered with an error"),
    (RequestException, INFRASTRUCTURE, "a network request failed"),
    (MirrorError, INFRASTRUCTURE, "fetching the repository failed"),
    (GraphChanged, INFRASTRUCTURE, "another miner changed the chains meanwhile"),
    (JobTimeoutException, DETERMINISTIC, "the job ran out of time"),
    (AbandonedJobError, INFRASTRUCTURE, "the worker running the job stopped (killed, or its "
                                        "machine lost)"),
    (ConnectionError, INFRASTRUCTURE, "a connection failed"),
    (TimeoutError, INFRASTRUCTURE, "a service or lock did not answer in time"),
)


@dataclass(frozen=True)
class Failure:
    kind: str
    """INFRASTRUCTURE or DETERMINISTIC."""
    reason: str
    """What failed, in one line."""
    retry_at: datetime | None = None
    """When rq runs the job again (None: it will not)."""

    @property
    def retried(self) -> bool:
        return self.retry_at is not None


def classify(exc: BaseException) -> tuple[str, str]:
    """(INFRASTRUCTURE or DETERMINISTIC, what it means) for ``exc``."""
    for kind, decide, meaning in FAILURE_CLASSES:
        if isinstance(exc, kind):
            return (decide if isinstance(decide, str) else decide(exc)), meaning
    return DETERMINISTIC, "the job failed"


def describe(exc: BaseException, limit: int = 300) -> str:
    """One line naming the failure: its meaning and the exception's own words."""
    _, meaning = classify(exc)
    words = " ".join(str(exc).split()) or type(exc).__name__
    text = f"{meaning} ({type(exc).__name__}: {words})"
    return text if len(text) <= limit else text[: limit - 1] + "…"


AfterFailure = Callable[[Job, Failure], None]
AFTER_FAILURE: dict[str, AfterFailure] = {}


def on_job_failure(job: Job, connection: Any, exc_type: type[BaseException] | None,
                   exc: BaseException | None, traceback: TracebackType | None) -> None:
    """rq's failure callback: decide about the retry, then let the job's module record it."""
    if exc is None:
        return
    kind, _ = classify(exc)
    if kind == DETERMINISTIC:
        job.retries_left = 0  # rq reads this right after the callback: no retry
    retry_at = None
    if job.should_retry:
        retry_at = datetime.now(UTC) + timedelta(seconds=job.get_retry_interval())
    failure = Failure(kind, describe(exc), retry_at)
    log.warning("job.failed", job=job.id, kind=kind, retry_at=retry_at and retry_at.isoformat(),
                reason=failure.reason)
    after = AFTER_FAILURE.get(job.func_name or "")
    if after is not None:
        try:
            after(job, failure)
        except Exception:  # recording must never hide the job's own failure
            log.exception("job.failure_not_recorded", job=job.id)
