"""Rolling out many chains of a local clone at once: on this machine or through rq workers.

`local` runs a process pool here. `rq` puts one job per chain on `davinci-rollouts`, where any
`davinci worker` that sees the clone's path and shares the database takes them (more workers,
more machines: faster); the caller waits and hears each verdict as it lands. `auto` uses rq
when Redis answers and a worker listens on the queue, else the pool.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from types import FrameType

import click
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.job import Job, JobStatus

from bot.jobs.rollouts import roll_out_one
from bot.pipeline import Progress, RolloutOutcome
from bot.queue import FAILURE_TTL, JOB_TIMEOUTS, RESULT_TTL
from bot.runtime import ROLLOUT_QUEUE
from bot.settings import Settings
from sandbox.base import SandboxError
from sandbox.factory import choose_backend

VIA = ("auto", "local", "rq")
POLL_SECONDS = 1.0
CLONE_JOB = "bot.jobs.rollouts.roll_out_clone"

Say = Callable[[str], None]


class BatchError(Exception):
    """The chains cannot be rolled out the way asked (no worker for `rq`, Redis down)."""


def roll_out_chains(settings: Settings, path: Path, chain_ids: list[str], policy: str,
                    workers: int, say: Say, via: str = "auto") -> list[RolloutOutcome]:
    """Every chain's outcome, in the order they finish; ``say`` hears one line per chain."""
    if not chain_ids:
        return []
    listening = _listening_workers(settings) if via in ("auto", "rq") else None
    if via == "rq" and not listening:
        raise BatchError(f"no worker listens on {ROLLOUT_QUEUE} at {settings.redis_url}: "
                         "start `davinci worker` (sharing this database and the clone's path) "
                         "or use --via local")
    if listening:
        say(f"rolling out through rq: {listening} worker(s) listen on {ROLLOUT_QUEUE}")
        return _through_rq(settings, path, chain_ids, policy, _Progress(chain_ids, say))
    choose_backend(settings.sandbox)  # no engine: one refusal here, not one per chain
    return _in_pool(settings, path, chain_ids, policy, workers, _Progress(chain_ids, say))


class _Progress:
    def __init__(self, chain_ids: list[str], say: Say) -> None:
        self.total, self.say, self.done = len(chain_ids), say, 0
        self.started = time.monotonic()

    def __call__(self, chain: str, outcome: RolloutOutcome) -> RolloutOutcome:
        self.done += 1
        state = "ACCEPTED" if outcome.accepted else outcome.state.replace("_", " ")
        elapsed = time.monotonic() - self.started
        self.say(f"[{self.done}/{self.total} {elapsed:5.0f}s] chain {chain}: {state}"
                 + (f" ({outcome.reason[:120]})" if outcome.reason else ""))
        return outcome


STOP_SECONDS = 120.0
"""How long a pool process told to stop (or left behind by a killed parent) has to close its
sandboxes before it exits anyway."""


class Interrupted(KeyboardInterrupt):
    """`davinci run` was told to stop (SIGTERM, or Ctrl-C): its rollouts were stopped and their
    sandboxes closed; ``done`` chains had their verdict first."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"stopped after {done} of {total} chains; run again to go on")
        self.done, self.total = done, total


def _in_pool(settings: Settings, path: Path, chain_ids: list[str], policy: str, workers: int,
             progress: _Progress) -> list[RolloutOutcome]:
    """Each chain in a pool process. SIGTERM here is passed on to the pool's processes and
    stops the batch as Ctrl-C does: each process unwinds its rollout (its sandboxes close)
    and exits, and Interrupted is raised. A pool process whose parent is killed outright does
    the same on its own instead of waiting for work forever."""
    outcomes: list[RolloutOutcome] = []
    restore = _pass_sigterm_on() if threading.current_thread() is threading.main_thread() \
        else None
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_pool_process,
                               initargs=(os.getpid(),))
    try:
        futures = {pool.submit(_roll_out, settings, path, chain, policy): chain
                   for chain in chain_ids}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - one chain's crash is its outcome
                outcome = RolloutOutcome.failed(futures[future], policy,
                                                f"{type(exc).__name__}: {exc}")
            outcomes.append(progress(futures[future], outcome))
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        _wait_for_children(STOP_SECONDS)
        raise Interrupted(len(outcomes), len(chain_ids)) from None
    else:
        pool.shutdown(wait=True)
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
    return outcomes


def _pass_sigterm_on() -> signal.Handlers | Callable[..., object] | int | None:
    """Make SIGTERM stop this process as Ctrl-C does, after passing it on to the pool's
    processes (Ctrl-C reaches them by itself); the handler that was there before."""
    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once
        for child in multiprocessing.active_children():
            child.terminate()
        raise KeyboardInterrupt
    return signal.signal(signal.SIGTERM, stop)


def _wait_for_children(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for child in multiprocessing.active_children():
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()


_busy = threading.Event()


def _pool_process(parent: int) -> None:
    """In each pool process: SIGTERM unwinds what it does (a rollout's sandboxes close on the
    way out), and a watcher stops it when its parent is gone."""
    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
        raise SystemExit(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """When the parent is killed outright, the pool's pipes never close (every pool process
    holds their ends too) and this process would wait for work forever: stop its rollout,
    give its clean-up STOP_SECONDS, and exit."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    time.sleep(0.5)
    while _busy.is_set() and time.monotonic() < deadline:
        time.sleep(0.2)
    os._exit(1)


def _roll_out(settings: Settings, path: Path, chain: str, policy: str) -> RolloutOutcome:
    _busy.set()
    try:
        return roll_out_one(settings, path, chain, policy, None, _Builds(chain))
    finally:
        _busy.clear()


class _Builds:
    """In a pool process: says on the terminal that an environment is still building (a
    build can take half an hour; the other lines come when a chain is done)."""

    def __init__(self, chain: str) -> None:
        self.chain = chain

    def __call__(self, progress: Progress) -> None:
        if progress.step == "building":
            click.echo(f"      chain {self.chain}: {progress.detail}", err=True)


def _listening_workers(settings: Settings) -> int:
    """Workers listening on the rollout queue; 0 when Redis does not answer."""
    try:
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        return len(Worker.all(queue=Queue(ROLLOUT_QUEUE, connection=redis)))
    except (RedisError, OSError):
        return 0


def _through_rq(settings: Settings, path: Path, chain_ids: list[str], policy: str,
                progress: _Progress) -> list[RolloutOutcome]:
    redis = Redis.from_url(settings.redis_url)
    queue = Queue(ROLLOUT_QUEUE, connection=redis)
    pending: dict[str, str] = {}
    try:
        for chain in chain_ids:
            queued = queue.enqueue(CLONE_JOB, str(path.resolve()), chain, policy,
                                job_timeout=JOB_TIMEOUTS[ROLLOUT_QUEUE], result_ttl=RESULT_TTL,
                                failure_ttl=FAILURE_TTL,
                                description=f"davinci run: chain {chain} ({policy})")
            pending[queued.id] = chain
        outcomes: list[RolloutOutcome] = []
        while pending:
            for found in Job.fetch_many(list(pending), connection=redis):
                outcome = _outcome(found, pending[found.id], policy) if found else None
                if found is not None and outcome is not None:
                    outcomes.append(progress(pending.pop(found.id), outcome))
            if pending:
                time.sleep(POLL_SECONDS)
        return outcomes
    except RedisError as exc:
        raise BatchError(f"Redis stopped answering while rolling out: {exc}") from exc
    finally:  # interrupted: jobs not started yet are taken back
        for job_id in pending:
            try:
                waiting = Job.fetch(job_id, connection=redis)
                if waiting.get_status() == JobStatus.QUEUED:
                    waiting.cancel()
            except Exception:  # noqa: BLE001, S110 - best effort on the way out
                pass


def _outcome(job: Job, chain: str, policy: str) -> RolloutOutcome | None:
    """The job's outcome once it ended; None while it waits or runs."""
    status = job.get_status(refresh=False)
    if status == JobStatus.FINISHED:
        value = job.return_value()
        if isinstance(value, dict):
            return RolloutOutcome.from_json(value)
        return RolloutOutcome.failed(chain, policy,
                                     f"the job returned {type(value).__name__}")
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        lines = (job.exc_info or f"the job {status}").strip().splitlines()
        return RolloutOutcome.failed(chain, policy, lines[-1] if lines else str(status))
    return None


def environment_images_now() -> set[str] | None:
    """The environment images on this machine's engine (None without one): before and after
    a batch, how many it built."""
    try:
        from sandbox.docker import client
        from sandbox.environment import environment_images

        return {image["image"] for image in environment_images(client())}
    except SandboxError:
        return None
