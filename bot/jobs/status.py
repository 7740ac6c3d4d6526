"""Keeping each merged PR's status comment true to the database (after mining, during and
after rollouts, and on `/davinci status`)."""

from __future__ import annotations

from typing import Any

import structlog
from github import Github
from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.checks import refresh_check
from bot.github import app_client
from bot.runtime import Runtime
from bot.status import ContentLimiter, LinkView, PRStatus, Published, RolloutView, publish
from chains.config import RepoConfig
from chains.store import ChainRow, LinkRow, MemberRow, PullRequestRow
from rollout.store import latest_rollout

log = structlog.get_logger(__name__)
PROGRESS_KEY = "davinci:rollout-progress:{chain}"


def bot_login(runtime: Runtime) -> str:
    """The App's own login (`slug[bot]`), cached in Redis."""
    key = "davinci:app-login"
    cached = runtime.redis.get(key)
    if cached:
        return cached.decode() if isinstance(cached, bytes) else str(cached)
    slug = app_client(runtime.settings).get_app().slug
    login = f"{slug}[bot]"
    runtime.redis.set(key, login, ex=24 * 3600)
    return login


def chain_for(session: Session, repository: str, number: int) -> ChainRow | None:
    """The chain a PR joined: the one it ends, else the longest it belongs to."""
    rows = session.scalars(select(ChainRow).join(MemberRow, MemberRow.chain_id == ChainRow.id)
                           .where(MemberRow.repository == repository,
                                  MemberRow.number == number)).all()
    ending = [r for r in rows if r.prs and r.prs[-1] == number]
    pool = ending or rows
    return max(pool, key=lambda r: (len(r.prs), r.id)) if pool else None


def build_status(session: Session, redis: Redis | None, repository: str, number: int,
                 config: RepoConfig | None = None,
                 config_problem: str | None = None) -> PRStatus:
    config = config or RepoConfig()
    pr = session.get(PullRequestRow, (repository, number))
    chain = chain_for(session, repository, number)
    if pr is None or chain is None:
        return PRStatus(repository=repository, number=number, config_problem=config_problem,
                        ignored=bool(pr and pr.ignored))
    links = []
    for earlier, later, kind in zip(chain.prs, chain.prs[1:], chain.kinds, strict=False):
        row = session.get(LinkRow, (repository, earlier, later, kind))
        links.append(LinkView(earlier, later, kind, row.evidence if row else ""))
    touching = set(session.scalars(select(PullRequestRow.number).where(
        PullRequestRow.repository == repository, PullRequestRow.number.in_(chain.prs),
        PullRequestRow.touches_tests.is_(True))))
    if chain.eligible:
        eligibility = f"{len(chain.prs)} pull requests, {len(touching)} with tests"
    elif len(chain.prs) < config.min_chain_length:
        eligibility = f"a chain needs at least {config.min_chain_length} pull requests"
    else:
        eligibility = "no pull request of this chain touches tests"
    return PRStatus(repository=repository, number=number, chain_id=chain.id,
                    chain_prs=tuple(chain.prs), links=tuple(links), eligible=chain.eligible,
                    eligibility=eligibility, rollout=_rollout_view(session, redis, chain),
                    ignored=pr.ignored, config_problem=config_problem)


def _rollout_view(session: Session, redis: Redis | None, chain: ChainRow) -> RolloutView | None:
    if redis is not None:
        raw = redis.hgetall(PROGRESS_KEY.format(chain=chain.id))
        progress = {k.decode(): v.decode() for k, v in raw.items()} if raw else {}
        if progress.get("state") in ("queued", "running") and \
                int(progress.get("length", "0")) == len(chain.prs):
            stage = int(progress["stage"]) if progress.get("stage") else None
            return RolloutView(progress["state"], stage=stage, stages=len(chain.prs))
    row = latest_rollout(session, chain.id)
    if row is None or len(row.summary.get("stages", [])) != len(chain.prs):
        return None
    summary: dict[str, Any] = row.summary
    reason = None if row.accepted else (f"the chain scored {row.score:.2f}, below the "
                                        f"threshold ({row.exit_status.replace('_', ' ')})")
    return RolloutView("accepted" if row.accepted else "rejected",
                       stages=len(summary.get("stages", [])), score=row.score, reason=reason,
                       tool_calls=summary.get("tool_calls"), tokens=summary.get("tokens"),
                       policy=row.policy)


def set_progress(redis: Redis, chain: ChainRow | Any, state: str, stage: int | None = None
                 ) -> None:
    key = PROGRESS_KEY.format(chain=chain.id)
    redis.hset(key, mapping={"state": state, "stage": str(stage or ""),
                             "length": str(len(chain.prs))})
    redis.expire(key, 6 * 3600)


def refresh(runtime: Runtime, client: Github, repository: str, number: int,
            config: RepoConfig | None = None, config_problem: str | None = None) -> Published:
    """Render the PR's status from the database and publish it (edit in place): the comment,
    and the check run when the repository asks for one."""
    with runtime.db.session() as session:
        status = build_status(session, runtime.redis, repository, number, config,
                              config_problem)
    issue = client.get_repo(repository).get_issue(number)
    limiter = ContentLimiter(runtime.redis, repository.split("/")[0])
    published = publish(issue, status, bot_login(runtime), runtime.redis, limiter)
    log.info("status.published", repo=repository, pr=number, action=published.action)
    refresh_check(runtime, client, status, config, limiter)
    return published
