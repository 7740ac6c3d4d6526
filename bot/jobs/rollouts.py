"""The rollout job on `davinci-rollouts`: one chain, one policy, one verdict.

rq retries it (see bot.queue) when the infrastructure fails (sandbox, LLM endpoint, GitHub);
an agent that fails its stages is a verdict, not an error.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select

from bot.github import installation_client
from bot.jobs.status import refresh, set_progress
from bot.models import Repository, utcnow
from bot.pipeline import PipelineError, Progress, roll_out_chain
from bot.runtime import Runtime
from bot.settings import Settings
from chains.mining import aware, to_chain
from chains.mirror import Mirror
from chains.queries import find_chain
from chains.store import ChainRow
from rollout.store import RolloutRow, ValidationRow, not_eligible_verdict
from rollout.task import TaskError
from sandbox.base import SandboxError

log = structlog.get_logger(__name__)


def rollout_chain(chain_id: str, policy: str | None = None) -> dict[str, Any]:
    """rq job. The policy is `llm` when LLM_* is configured, else `replay`."""
    runtime = Runtime(Settings.from_env())
    try:
        return run(runtime, chain_id, policy or default_policy(runtime.settings))
    finally:
        runtime.close()


def roll_out_clone(path: str, chain_id: str, policy: str) -> dict[str, Any]:
    """rq job of `davinci run`: one chain of the clone at ``path`` (a path this worker sees,
    and the database `davinci run` mined into). A failure is the chain's verdict, not a
    retried error."""
    return roll_out_one(Settings.from_env(), Path(path), chain_id, policy)


def roll_out_one(settings: Settings, path: Path, chain_id: str, policy: str) -> dict[str, Any]:
    """One chain's verdict from a process of its own (its own database connection); a
    rollout that cannot be done is a verdict whose reason starts "the rollout failed"."""
    runtime = Runtime(settings)
    try:
        return roll_out_chain(runtime, path, chain_id, policy)
    except (PipelineError, TaskError, SandboxError, LookupError) as exc:
        return failed_verdict(chain_id, policy, str(exc))
    finally:
        runtime.close()


def failed_verdict(chain_id: str, policy: str, error: str) -> dict[str, Any]:
    return {**not_eligible_verdict(chain_id, policy, f"the rollout failed: {error}"),
            "failed": True}


def default_policy(settings: Settings) -> str:
    return "llm" if settings.llm_base_url and settings.llm_model else "replay"


def run(runtime: Runtime, chain_id: str, policy: str = "replay") -> dict[str, Any]:
    with runtime.db.session() as session:
        chain = find_chain(session, chain_id)
        if chain is None:
            raise PipelineError(f"chain {chain_id} does not exist")
        snapshot = ChainRow(id=chain.id, repository=chain.repository, prs=list(chain.prs),
                            kinds=list(chain.kinds))
        repo = session.query(Repository).filter_by(full_name=chain.repository).first()
        installation = repo.installation_id if repo is not None else None
    mirror = Mirror.at(runtime.settings.data_dir, snapshot.repository, "")
    if not (mirror.path / "HEAD").exists():
        raise PipelineError(f"{snapshot.repository} has no local mirror yet; mine it first")
    client = (installation_client(runtime.settings, runtime.redis, installation)
              if installation is not None and runtime.settings.github_app_id else None)
    last = snapshot.prs[-1]

    def on_progress(progress: Progress) -> None:
        if progress.step == "running":
            set_progress(runtime.redis, snapshot, "running", 1)
        elif progress.step == "stage":
            set_progress(runtime.redis, snapshot, "running", int(progress.detail or 1))
        if client is not None and progress.step in ("running",):
            refresh(runtime, client, snapshot.repository, last)

    set_progress(runtime.redis, snapshot, "queued")
    allow_local = runtime.settings.sandbox == "local"
    try:
        verdict = roll_out_chain(runtime, mirror.path, snapshot.id, policy,
                                 allow_local=allow_local, on_progress=on_progress)
    finally:
        runtime.redis.delete(f"davinci:rollout-progress:{snapshot.id}")
    if client is not None:
        refresh(runtime, client, snapshot.repository, last)
    log.info("rollout.job_done", chain=snapshot.id, accepted=verdict["accepted"])
    return verdict


def recover_lost_rollouts(runtime: Runtime, window: timedelta = timedelta(days=1)) -> list[str]:
    """Enqueue again the rollouts of eligible chains that grew within ``window`` and have no
    verdict since (no rollout, no validation): after Redis lost its data, their jobs are gone,
    and mining them again would not enqueue them (the PRs are already mined)."""
    from bot.jobs.mining import enqueue_rollout

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
