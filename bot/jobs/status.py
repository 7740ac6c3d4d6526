"""Keeping each merged PR's status comment true to the database (after mining, during and
after rollouts, and on `/davinci status`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import structlog
from github import Github, GithubException
from requests import RequestException
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.checks import refresh_check
from bot.github import app_client
from bot.runtime import Runtime
from bot.status import ContentLimiter, LinkView, PRStatus, Published, Trajectory, publish
from chains.config import RepoConfig
from chains.queries import chain_document
from chains.store import ChainRow, LinkRow, MemberRow, PullRequestRow
from rollout.state import ChainState, chain_states, mining_reasons
from rollout.store import RolloutRow

log = structlog.get_logger(__name__)


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


def build_status(session: Session, repository: str, number: int,
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
    document = chain_document(session, chain, config.min_chain_length)
    state = chain_states(session, [chain], mining_reasons([document]))
    return PRStatus(repository=repository, number=number, chain_id=chain.id,
                    chain_prs=tuple(chain.prs), links=tuple(links), state=state[chain.id],
                    trajectory=_trajectory(session, state[chain.id]), ignored=pr.ignored,
                    config_problem=config_problem)


def _trajectory(session: Session, state: ChainState) -> Trajectory | None:
    if state.rollout_id is None:
        return None
    row = session.get(RolloutRow, state.rollout_id)
    if row is None:
        return None
    summary: dict[str, Any] = row.summary
    return Trajectory(summary.get("tool_calls"), summary.get("tokens"), row.policy)


def refresh(runtime: Runtime, client: Github, repository: str, number: int,
            config: RepoConfig | None = None, config_problem: str | None = None) -> Published:
    """Render the PR's status from the database and publish it: the comment (edited in place;
    created only where it tells something — a chain, an exclusion, a broken configuration —
    unless `comment_unchained: true`, and none with `comment: false`), and the check run when
    the repository asks for one (``config`` None: read from the repository)."""
    given, config = config, config or RepoConfig()
    config_problem = _reported_here(runtime, repository, number, config_problem)
    with runtime.db.session() as session:
        status = build_status(session, repository, number, config, config_problem)
    limiter = ContentLimiter(runtime.redis, repository.split("/")[0],
                             per_minute=runtime.settings.github_writes_per_minute)
    published = Published("skipped", 0)
    if config.comment:
        issue = client.get_repo(repository).get_issue(number)
        create = status.worth_a_comment or config.comment_unchained
        published = publish(issue, status, bot_login(runtime), runtime.redis, limiter,
                            create=create)
        log.info("status.published", repo=repository, pr=number, action=published.action)
    refresh_check(runtime, client, status, given, limiter)
    return published


def _reported_here(runtime: Runtime, repository: str, number: int,
                   problem: str | None) -> str | None:
    """A broken `.github/davinci.yml` is reported on one PR, the first that met it, and stays
    on that PR's comment while it lasts (not on every PR mined meanwhile)."""
    if not problem:
        return None
    digest = hashlib.sha256(problem.encode()).hexdigest()[:16]
    key = f"davinci:config-problem-reported:{repository}:{digest}"
    runtime.redis.set(key, str(number), nx=True, ex=30 * 24 * 3600)
    first = runtime.redis.get(key)
    return problem if first is not None and int(first) == number else None


def refresh_chain(runtime: Runtime, client: Github, repository: str,
                  numbers: Sequence[int], config: RepoConfig | None = None,
                  config_problem: str | None = None) -> int:
    """Refresh the comments of ``numbers`` (a chain's PRs); how many were published. GitHub
    being away costs a stale comment, never the work that was done (the next refresh fixes
    it), so its errors are logged, not raised."""
    published = 0
    for number in numbers:
        try:
            refresh(runtime, client, repository, number, config, config_problem)
            published += 1
        except (GithubException, RequestException, TimeoutError) as exc:
            log.warning("status.not_published", repo=repository, pr=number,
                        error=type(exc).__name__, detail=str(exc)[:200])
    return published
