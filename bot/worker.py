"""The worker process: rq's Worker with a configurable abandonment limit and a sweeper thread.

rq keeps every started job in a registry whose entry the worker renews with a heartbeat. When a
worker dies with the job (machine lost, OOM kill, SIGKILL), the heartbeat stops; once the entry
expires, any worker's maintenance retries the job (our jobs carry rq retries) or marks it
failed. rq's own limit is the monitoring interval plus 60 seconds and its maintenance runs
every ten minutes (also the only time a worker takes over the scheduler of a dead one, so
retries scheduled for later would wait); here both follow `DAVINCI_ABANDONED_AFTER`. The
sweeper thread recovers abandoned jobs, enqueues webhook deliveries left pending while Redis
was down and, every ten minutes, asks GitHub to redeliver the deliveries that failed to arrive
(bot.redeliver).

Only the main thread starts processes (the work horse, the scheduler): a process forked from
another thread can inherit a lock some other thread held, and hang for ever, and the worker's
warm shutdown with it.
"""

from __future__ import annotations

import logging
import threading

import structlog
from github import GithubException
from redis.exceptions import LockError, RedisError
from requests import RequestException
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty
from sqlalchemy.exc import SQLAlchemyError

from bot import webhooks
from bot.runtime import Runtime

SWEEP_SECONDS = 30.0
REDELIVER_SECONDS = 600
log = structlog.get_logger()


class DavinciWorker(Worker):
    """An rq worker whose jobs count as abandoned ``abandoned_after`` seconds after the last
    heartbeat (rq: monitoring interval + 60)."""

    def __init__(self, *args: object, abandoned_after: int = 90, **kwargs: object) -> None:
        interval = max(1, abandoned_after // 3)
        kwargs.setdefault("job_monitoring_interval", interval)
        # Maintenance also takes over the scheduler (which moves retries back to their queue)
        # when the worker that ran it died: its lock expires, and rq only tries again at the
        # next maintenance, every ten minutes by default.
        kwargs.setdefault("maintenance_interval", max(10, abandoned_after))
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.abandoned_after = abandoned_after

    @property
    def dequeue_timeout(self) -> int:
        """An idle worker's blocking dequeue gives way to maintenance (which takes over a dead
        worker's scheduler) every maintenance interval, not every worker TTL (minutes)."""
        return max(1, min(super().dequeue_timeout, int(self.maintenance_interval)))

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        ttl = super().get_heartbeat_ttl(job, working_time)
        grace = self.abandoned_after - self.job_monitoring_interval
        return max(1, ttl - 60 + grace)


def recover_abandoned(queues: list[Queue], runtime: Runtime | None = None) -> int:
    """Retry (or fail) the started jobs whose heartbeat expired; how many there were. With
    ``runtime``, the runs of abandoned rollouts say what became of them."""
    found = 0
    for queue in queues:
        # Off the main thread, rq's default time limit for the failure callback (SIGALRM)
        # cannot be set, and the callback would not run.
        registry = StartedJobRegistry(queue=queue, death_penalty_class=TimerDeathPenalty)
        expired = registry.get_expired_job_ids()
        if expired:
            log.warning("worker.abandoned_jobs", queue=queue.name, jobs=expired)
            registry.cleanup()
            found += len(expired)
            if runtime is not None:
                from bot.jobs.rollouts import mark_abandoned

                jobs = Job.fetch_many(expired, connection=runtime.redis)
                mark_abandoned(runtime, [job for job in jobs if job is not None])
    return found


def start_sweeper(runtime: Runtime, queues: list[Queue], every: float,
                  stop: threading.Event | None = None) -> threading.Thread:
    """Every ``every`` seconds, one worker (a Redis lock elects it) recovers abandoned jobs
    and enqueues pending webhook deliveries. Runs until ``stop`` is set (for ever without
    one)."""
    from handlers import build_router

    router = build_router()

    stopped = stop or threading.Event()

    def loop() -> None:
        while not stopped.wait(every):
            sweep_once()

    def sweep_once() -> None:
        """One round; whatever fails is logged and the next round goes on (an exception that
        ended the loop would stop recovery on this worker for good)."""
        try:
            lock = runtime.redis.lock("davinci:lock:sweep", timeout=max(every * 4, 60),
                                      blocking_timeout=0)
            if lock.acquire():
                try:
                    recover_abandoned(queues, runtime)
                    webhooks.sweep(runtime, router)
                finally:
                    lock.release()
            heal(runtime)
        except (RedisError, SQLAlchemyError, LockError) as exc:  # a service away for a while
            log.warning("sweep.failed", error=type(exc).__name__)
        except Exception as exc:  # a bug or bad data: say what, keep sweeping
            log.error("sweep.failed", error=type(exc).__name__, detail=str(exc)[:500],
                      exc_info=True)

    thread = threading.Thread(target=loop, name="davinci-sweeper", daemon=True)
    thread.start()
    return thread


def heal(runtime: Runtime) -> None:
    """Every REDELIVER_SECONDS, one worker asks GitHub to redeliver what failed to arrive."""
    settings = runtime.settings
    if not (settings.github_app_id and settings.github_private_key):
        return
    if not runtime.redis.set("davinci:redeliver:due", "1", nx=True, ex=REDELIVER_SECONDS):
        return
    from bot.redeliver import redeliver_failed

    try:
        redeliver_failed(runtime)
    except (GithubException, RequestException) as exc:
        log.warning("redeliver.failed", error=type(exc).__name__)


def run_worker(runtime: Runtime, queue_names: tuple[str, ...], burst: bool) -> None:
    """Check the prerequisites (bot.doctor.worker_prerequisites: refuse to start without
    them, rather than fail every job later), then work. rq logs through the standard
    library's root handler that bot.logs installs, so in DAVINCI_LOG_FORMAT's format."""
    from bot.doctor import require, worker_prerequisites

    for warning in require("worker", worker_prerequisites(runtime.settings, queue_names)):
        log.warning("worker.prerequisite", check=warning.name, detail=warning.detail,
                    fix=warning.fix)
    runtime.db  # noqa: B018 - create the schema before the first job
    abandoned_after = runtime.settings.abandoned_after
    queues = [runtime.queue(name) for name in queue_names]
    worker = DavinciWorker(queues, connection=runtime.redis, abandoned_after=abandoned_after)
    if not burst:
        start_sweeper(runtime, queues, min(SWEEP_SECONDS, abandoned_after / 2))
    else:
        recover_abandoned(queues, runtime)
    # rq sets its loggers to INFO on import; ours say what the process logs.
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    worker.work(burst=burst, with_scheduler=True, logging_level=level)
