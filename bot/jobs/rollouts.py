"""The rollout job on `davinci-rollouts`: one chain, one policy, one verdict, on any worker.

The job brings the chain's commits into this machine's mirror (from GitHub with the
installation token, else from `DAVINCI_MIRROR_URL`), so workers that share only Redis and the
database run any rollout. Each step is written to the chain's run (`rollout.store`), which
every surface reads; the PR comments of the chain follow it. A failure is classed by
`bot.failures`: infrastructure is retried with back-off, anything else is recorded once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from github import Github
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from bot.failures import AFTER_FAILURE, Failure
from bot.github import installation_client
from bot.jobs.status import refresh_chain
from bot.models import Repository, utcnow
from bot.pipeline import PipelineError, Progress, RolloutOutcome, roll_out_chain
from bot.queue import enqueue
from bot.runtime import ROLLOUT_QUEUE, Runtime
from bot.settings import Settings
from chains.config import RepoConfig, config_at
from chains.github_source import GitHubSource, installation_token
from chains.mining import aware, to_chain
from chains.mirror import Mirror, MirrorError
from chains.model import Chain
from chains.queries import find_chain
from chains.store import ChainRow, PullRequestRow
from handlers import JobSpec
from rollout.store import (
    ENDED,
    RolloutRow,
    RolloutRunRow,
    ValidationRow,
    count_attempt,
    mark_run,
)
from rollout.task import TaskError
from sandbox.base import SandboxError

log = structlog.get_logger(__name__)

ROLLOUT_FUNC = "bot.jobs.rollouts.rollout_chain"


def rollout_job_id(chain: Chain, policy: str = "replay") -> str:
    """One rollout per chain version and policy: a re-run enqueues nothing, growth anew."""
    return f"rollout-{chain.id}-len{len(chain.prs)}-{policy}"


def default_policy(settings: Settings) -> str:
    return "llm" if settings.llm_base_url and settings.llm_model else "replay"


def enqueue_rollout(runtime: Runtime, chain: Chain, job_id: str | None = None,
                    description: str | None = None) -> str | None:
    """Put the chain's rollout on the queue (once per id) and mark its run queued."""
    policy = default_policy(runtime.settings)
    spec = JobSpec(ROLLOUT_QUEUE, ROLLOUT_FUNC, (chain.id, policy),
                   job_id or rollout_job_id(chain, policy),
                   description or f"rollout {chain.repository} chain {chain.id}")
    if not enqueue(runtime.redis, spec):
        return None
    with runtime.db.session() as session:
        mark_run(session, spec.job_id, "queued", chain_id=chain.id,
                 chain_length=len(chain.prs), policy=policy)
    log.info("rollout.enqueued", chain=chain.id, job=spec.job_id)
    return spec.job_id


@dataclass(frozen=True)
class _Snapshot:
    id: str
    repository: str
    prs: tuple[int, ...]
    commits: tuple[str, ...]
    """The merge commits of the chain's PRs, in chain order: what the rollout reads."""
    installation: int | None


def rollout_chain(chain_id: str, policy: str | None = None) -> dict[str, Any]:
    """rq job. The policy is `llm` when LLM_* is configured, else `replay`."""
    from rq import get_current_job

    job = get_current_job()
    runtime = Runtime(Settings.from_env())
    try:
        return run(runtime, chain_id, policy or default_policy(runtime.settings),
                   job.id if job is not None else None).to_json()
    finally:
        runtime.close()


def run(runtime: Runtime, chain_id: str, policy: str = "replay",
        run_id: str | None = None) -> RolloutOutcome:
    """Prepare the mirror, roll the chain out, and keep its PRs' comments in step."""
    snapshot = _snapshot(runtime, chain_id)
    if run_id is not None:
        with runtime.db.session() as session:
            count_attempt(session, run_id, snapshot.id, len(snapshot.prs), policy)
    client = _client(runtime, snapshot)
    path = _mirror(runtime, snapshot, client)
    config, problem = _repo_config(runtime.settings, snapshot)

    def on_progress(progress: Progress) -> None:
        if client is not None and progress.step in ("running", "stage"):
            refresh_chain(runtime, client, snapshot.repository, snapshot.prs[-1:], config,
                          problem)

    outcome = roll_out_chain(runtime, path, snapshot.id, policy, on_progress=on_progress,
                             run_id=run_id)
    if client is not None:
        refresh_chain(runtime, client, snapshot.repository, snapshot.prs, config, problem)
    log.info("rollout.job_done", chain=snapshot.id, state=outcome.state)
    return outcome


def _snapshot(runtime: Runtime, chain_id: str) -> _Snapshot:
    with runtime.db.session() as session:
        chain = find_chain(session, chain_id)
        if chain is None:
            raise PipelineError(f"chain {chain_id} does not exist")
        rows = session.execute(select(PullRequestRow.number, PullRequestRow.merge_commit).where(
            PullRequestRow.repository == chain.repository, PullRequestRow.number.in_(chain.prs)))
        merged = {number: commit for number, commit in rows}
        repo = session.query(Repository).filter_by(full_name=chain.repository).first()
        return _Snapshot(chain.id, chain.repository, tuple(chain.prs),
                         tuple(merged[n] for n in chain.prs if merged.get(n)),
                         repo.installation_id if repo is not None else None)


def _client(runtime: Runtime, snapshot: _Snapshot) -> Github | None:
    if snapshot.installation is None or not runtime.settings.github_app_id:
        return None
    return installation_client(runtime.settings, runtime.redis, snapshot.installation)


def _repo_config(settings: Settings, snapshot: _Snapshot
                 ) -> tuple[RepoConfig | None, str | None]:
    """`.github/davinci.yml` at the chain's last merge, read from this machine's mirror, and
    what is wrong with it; (None, None) when the mirror does not hold it (read it from GitHub)."""
    path = Mirror.at(settings.data_dir, snapshot.repository, "").path
    if not snapshot.commits or not (path / "HEAD").exists():
        return None, None
    parsed = config_at(path, snapshot.commits[-1])
    return parsed.config, parsed.problem


def _mirror(runtime: Runtime, snapshot: _Snapshot, client: Github | None) -> Path:
    """This machine's mirror of the repository, holding every commit the chain needs."""
    return bring_commits(runtime.settings, snapshot.repository, snapshot.commits, client)


def bring_commits(settings: Settings, repository: str, commits: tuple[str, ...],
                  client: Github | None = None) -> Path:
    """The local mirror of ``repository`` with ``commits`` in it, and the submodule commits
    they record (Mirror.fetch_submodules): fetched from GitHub with the installation's token
    when there is a client, else from DAVINCI_MIRROR_URL."""
    mirror = Mirror.at(settings.data_dir, repository, "")
    if (mirror.path / "HEAD").exists() and all(mirror.has(sha) for sha in commits):
        mirror.fetch_submodules(commits)
        return mirror.path
    if client is not None:
        mirror = GitHubSource(client, repository, settings.data_dir).mirror()
        mirror.fetch(list(commits), token=installation_token(client))
    elif settings.mirror_url:
        url = f"{settings.mirror_url.rstrip('/')}/{repository}.git"
        mirror = Mirror.at(settings.data_dir, repository, url).ensure()
        mirror.fetch(list(commits))
    else:
        raise PipelineError(
            f"this worker has no mirror of {repository} with the chain's commits and no way "
            "to fetch them: install the GitHub App on the repository, or set "
            "DAVINCI_MIRROR_URL to where its mirror can be fetched")
    mirror.fetch_submodules(commits)
    return mirror.path


def _rollout_failed(job: Job, failure: Failure) -> None:
    """A rollout job raised: its run says failed (or retrying, and when), and so does the PR
    comment."""
    chain_id = str(job.args[0]) if job.args else ""
    runtime = Runtime(Settings.from_env())
    try:
        with runtime.db.session() as session:
            if session.get(RolloutRunRow, job.id) is None:  # failed before its first step
                chain = find_chain(session, chain_id)
                if chain is None:
                    return
                mark_run(session, job.id, "queued", chain_id=chain.id,
                         chain_length=len(chain.prs),
                         policy=str(job.args[1]) if len(job.args) > 1 else "replay")
            state = "retrying" if failure.retried else "failed"
            mark_run(session, job.id, state, reason=failure.reason, retry_at=failure.retry_at,
                     stage=None)
        snapshot = _snapshot(runtime, chain_id)
        client = _client(runtime, snapshot)
        if client is not None:
            refresh_chain(runtime, client, snapshot.repository, snapshot.prs[-1:],
                          *_repo_config(runtime.settings, snapshot))
    finally:
        runtime.close()


AFTER_FAILURE[ROLLOUT_FUNC] = _rollout_failed


def mark_abandoned(runtime: Runtime, jobs: list[Job]) -> int:
    """Rollout jobs whose worker died (no heartbeat; rq has retried or failed them): their
    runs say so instead of `running` for ever. How many runs were marked."""
    marked = 0
    with runtime.db.session() as session:
        for job in jobs:
            row = session.get(RolloutRunRow, job.id)
            if job.func_name != ROLLOUT_FUNC or row is None or row.state in ENDED:
                continue
            reason = "the worker running it stopped (no heartbeat)"
            status = job.get_status(refresh=False)
            retry_at = None
            if status == "scheduled":
                registry = ScheduledJobRegistry(job.origin, connection=runtime.redis)
                retry_at = registry.get_scheduled_time(job.id)
            mark_run(session, job.id, "retrying" if status in ("scheduled", "queued")
                     else "failed", reason=reason, stage=None, retry_at=retry_at)
            marked += 1
    return marked


def roll_out_clone(path: str, chain_id: str, policy: str) -> dict[str, Any]:
    """rq job of `davinci run`: one chain of the clone at ``path`` (a path this worker sees,
    or else the repository's mirror fetched from DAVINCI_MIRROR_URL), in the database
    `davinci run` mined into. A failure is the chain's verdict, not a retried error."""
    from rq import get_current_job

    job = get_current_job()
    settings = Settings.from_env()
    here = Path(path)
    runtime = Runtime(settings)
    try:
        snapshot = _snapshot(runtime, chain_id)
        if job is not None:
            with runtime.db.session() as session:
                count_attempt(session, job.id, snapshot.id, len(snapshot.prs), policy)
    except PipelineError as exc:
        return RolloutOutcome.failed(chain_id, policy, str(exc)).to_json()
    finally:
        runtime.close()
    if not (here / ".git").exists() and not (here / "HEAD").exists():
        try:
            here = bring_commits(settings, snapshot.repository, snapshot.commits)
        except (PipelineError, MirrorError, OSError) as exc:
            return RolloutOutcome.failed(chain_id, policy, str(exc)).to_json()
    return roll_out_one(settings, here, chain_id, policy,
                        job.id if job is not None else None).to_json()


def roll_out_one(settings: Settings, path: Path, chain_id: str, policy: str,
                 run_id: str | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> RolloutOutcome:
    """One chain's outcome from a process of its own (its own database connection); a
    rollout that cannot be done is a `failed` outcome with the reason."""
    runtime = Runtime(settings)
    try:
        return roll_out_chain(runtime, path, chain_id, policy, run_id=run_id,
                              on_progress=on_progress)
    except (PipelineError, TaskError, SandboxError, LookupError) as exc:
        return RolloutOutcome.failed(chain_id, policy, str(exc))
    finally:
        runtime.close()


def recover_lost_rollouts(runtime: Runtime, window: timedelta = timedelta(days=1)) -> list[str]:
    """Enqueue again the rollouts of eligible chains that grew within ``window`` and have no
    verdict since (no rollout, no validation): after Redis lost its data, their jobs are gone,
    and mining them again would not enqueue them (the PRs are already mined)."""
    since = utcnow() - window
    with runtime.db.session() as session:
        rows = session.scalars(select(ChainRow).where(ChainRow.eligible.is_(True),
                                                      ChainRow.updated_at >= since)).all()
        ids = [row.id for row in rows]
        latest: dict[str, datetime] = {}
        for table in (RolloutRow, ValidationRow):  # the newest verdict of each chain
            for chain_id, at in session.execute(
                    select(table.chain_id, func.max(table.created_at))
                    .where(table.chain_id.in_(ids)).group_by(table.chain_id)):
                at = aware(at)
                latest[chain_id] = max(latest.get(chain_id, at), at)
        due = [to_chain(row) for row in rows
               if row.id not in latest or latest[row.id] < aware(row.updated_at)]
    jobs = [job for chain in due if (job := enqueue_rollout(runtime, chain))]
    if jobs:
        log.warning("rollout.recovered_after_redis_data_loss", jobs=jobs)
    return jobs
