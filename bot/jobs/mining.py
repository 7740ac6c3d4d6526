"""Mining jobs on `davinci-mining`: one merged PR, or a repository's recent history.

`mine` and `backfill` are the reusable steps (they take an open Runtime and a client);
`mine_pull_request` and `backfill_repository` are the rq entry points that open them.
Whoever needs to act once a PR has been mined (the status comment) registers a function in
`AFTER_MINING`; it receives the runtime, the installation client and the outcome.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from github import Github
from redis.exceptions import LockError
from sqlalchemy import select

from bot.github import installation_client
from bot.jobs.rollouts import enqueue_rollout
from bot.models import Delivery, Repository, utcnow
from bot.runtime import Runtime
from bot.settings import Settings
from chains.config import ParsedConfig, RepoConfig, parse_config
from chains.github_source import GitHubSource, RepositoryInfo, installation_token
from chains.gitsource import GitBlame
from chains.mining import AttachResult, attach_pull_request, referenced_numbers
from chains.model import Chain, PullRequest
from chains.store import PullRequestRow

log = structlog.get_logger(__name__)

LOCK_SECONDS = 600
LOCK_WAIT = 600


@dataclass(frozen=True)
class MiningOutcome:
    repository: str
    number: int
    skipped: str | None = None
    """Why nothing was mined (the repository is disabled), else None."""
    config_problem: str | None = None
    """What is wrong with `.github/davinci.yml` (defaults applied), for the PR's status."""
    links: int = 0
    chain: Chain | None = None
    already_mined: bool = False
    rollout_job: str | None = None
    """The rollout job enqueued because the chain became eligible or grew."""
    config: RepoConfig = field(default_factory=RepoConfig)
    """The repository's `.github/davinci.yml` (defaults where it has none or a broken one)."""

    @property
    def comment(self) -> bool:
        """False when `.github/davinci.yml` turned the status comment off."""
        return self.config.comment


AfterMining = Callable[[Runtime, Github, MiningOutcome], None]
AFTER_MINING: list[AfterMining] = []


@dataclass
class BackfillSummary:
    repository: str
    candidates: int = 0
    mined: int = 0
    skipped: int = 0
    """Already mined before this run (an earlier, interrupted backfill or a webhook)."""
    rollouts: list[str] = field(default_factory=list)
    disabled: bool = False
    config_problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "candidates": self.candidates,
                "mined": self.mined, "skipped": self.skipped, "rollouts": self.rollouts,
                "disabled": self.disabled, "config_problem": self.config_problem}


def _wants_rollout(result: AttachResult) -> bool:
    chain = result.chain
    return (chain is not None and chain.eligible and not result.already_mined
            and (result.grew or result.became_eligible))


def _config(runtime: Runtime, source: GitHubSource, installation_id: int) -> ParsedConfig:
    """The repository's configuration; records whether it is enabled on its row."""
    parsed = parse_config(source.config_text())
    if parsed.problem:
        log.warning("mining.config_problem", repo=source.repository, problem=parsed.problem)
    _record_repository(runtime, source.info(), installation_id, parsed.config.enabled)
    return parsed


def _record_repository(runtime: Runtime, info: RepositoryInfo, installation_id: int,
                       enabled: bool) -> None:
    with runtime.db.session() as session:
        row = session.get(Repository, info.id)
        if row is None:
            row = session.scalars(select(Repository).where(
                Repository.full_name == info.full_name)).first()
        if row is None:
            row = Repository(id=info.id, full_name=info.full_name)
            session.add(row)
        row.installation_id = installation_id
        row.private = info.private
        row.enabled = enabled


def _mined(runtime: Runtime, repository: str, numbers: set[int] | None = None) -> set[int]:
    """The PRs of ``repository`` already mined (among ``numbers`` when given)."""
    query = select(PullRequestRow.number).where(PullRequestRow.repository == repository)
    if numbers is not None:
        if not numbers:
            return set()
        query = query.where(PullRequestRow.number.in_(numbers))
    with runtime.db.session() as session:
        return set(session.scalars(query))


def _attach(runtime: Runtime, client: Github, source: GitHubSource, number: int,
            parsed: ParsedConfig, pr: PullRequest | None = None) -> AttachResult:
    """``pr``: the PR as already fetched by a caller that knows it is not mined yet."""
    if pr is None and number in _mined(runtime, source.repository, {number}):
        # Already recorded: attaching is a lookup, so a re-run costs no API calls or fetches.
        with runtime.db.session() as session:
            return attach_pull_request(session, PullRequest(source.repository, number, ""),
                                       None, parsed.config)
    pr = pr or source.pull_request(number)
    mirror, pr = source.sync_mirror(pr, installation_token(client))
    with runtime.db.session() as session, GitBlame(mirror.path) as blame:
        return attach_pull_request(session, pr, blame, parsed.config)


def mine(runtime: Runtime, client: Github, installation_id: int, repository: str,
         number: int) -> MiningOutcome:
    """Mine one merged PR: configuration, PR, links, chain, then the rollout if due.

    Under the repository's lock, PRs merged earlier whose deliveries arrived but are not mined
    yet (another worker has not reached them) are mined first, and so are earlier merged PRs
    this one names whose deliveries never came (or come late, redelivered): links only point
    backwards, so a repository is mined in merge order even when several workers share the
    queue or a delivery was lost.
    """
    source = GitHubSource(client, repository, runtime.settings.data_dir)
    parsed = _config(runtime, source, installation_id)
    if not parsed.config.enabled:
        log.info("mining.disabled", repo=repository, pr=number)
        return MiningOutcome(repository, number, skipped="disabled by .github/davinci.yml",
                             config_problem=parsed.problem)
    with repository_lock(runtime, repository):
        for earlier in delivered_before(runtime, repository, number):
            log.info("mining.earlier_first", repo=repository, pr=earlier, before=number)
            _mine_one(runtime, client, source, parsed, installation_id, earlier)
        pr = None
        if number not in _mined(runtime, repository, {number}):
            pr = source.pull_request(number)
            for earlier in referenced_unmined(runtime, source, pr):
                log.info("mining.referenced_first", repo=repository, pr=earlier, before=number)
                _mine_one(runtime, client, source, parsed, installation_id, earlier)
        return _mine_one(runtime, client, source, parsed, installation_id, number, pr)


def _mine_one(runtime: Runtime, client: Github, source: GitHubSource, parsed: ParsedConfig,
              installation_id: int, number: int, pr: PullRequest | None = None) -> MiningOutcome:
    bound = log.bind(repo=source.repository, pr=number, installation=installation_id)
    result = _attach(runtime, client, source, number, parsed, pr)
    rollout = enqueue_rollout(runtime, result.chain) if (
        result.chain is not None and _wants_rollout(result)) else None
    outcome = MiningOutcome(source.repository, number, config_problem=parsed.problem,
                            links=len(result.links), chain=result.chain,
                            already_mined=result.already_mined, rollout_job=rollout,
                            config=parsed.config)
    bound.info("mining.done", links=outcome.links, already=outcome.already_mined,
               chain=result.chain.id if result.chain else None, rollout=rollout)
    for after in AFTER_MINING:
        after(runtime, client, outcome)
    return outcome


class MiningBusy(TimeoutError):
    """Another worker holds the repository for longer than we wait; rq retries the job (a
    TimeoutError is an infrastructure failure, see bot.failures)."""


@contextmanager
def repository_lock(runtime: Runtime, repository: str) -> Iterator[None]:
    """One miner per repository at a time: chains grow in one place, the mirror is fetched
    by one process."""
    lock = runtime.redis.lock(f"davinci:lock:mine:{repository}", timeout=LOCK_SECONDS,
                              blocking_timeout=LOCK_WAIT)
    if not lock.acquire():
        raise MiningBusy(f"{repository} has been busy with another miner for {LOCK_WAIT}s")
    try:
        yield
    finally:
        with contextlib.suppress(LockError):
            lock.release()


MAX_REFERENCED = 5


def referenced_unmined(runtime: Runtime, source: GitHubSource, pr: PullRequest) -> list[int]:
    """Merged PRs that ``pr`` names, merged before it, and not mined yet (at most a few)."""
    named = [n for n in referenced_numbers(pr) if n < pr.number]
    missing = sorted(set(named) - _mined(runtime, source.repository, set(named)))
    found = []
    for number in missing[-MAX_REFERENCED:]:
        merged_at = source.merged_at(number)  # None: an issue, or a PR never merged
        if merged_at is not None and pr.merged_at is not None and merged_at < pr.merged_at:
            found.append((merged_at, number))
    return [number for _, number in sorted(found)]


def delivered_before(runtime: Runtime, repository: str, number: int) -> list[int]:
    """PRs merged before ``number`` (by their deliveries of the last day) not yet mined."""
    since = utcnow() - timedelta(days=1)
    merged: dict[int, str] = {}
    with runtime.db.session() as session:
        payloads = session.scalars(select(Delivery.payload).where(
            Delivery.event == "pull_request", Delivery.action == "closed",
            Delivery.repository == repository, Delivery.received_at >= since))
        for text in payloads:
            pull = json.loads(text).get("pull_request") or {}
            if pull.get("merged") and isinstance(pull.get("number"), int) \
                    and isinstance(pull.get("merged_at"), str):
                merged[pull["number"]] = pull["merged_at"]
        own = merged.get(number)
        if own is None:
            return []
        earlier = {n for n, at in merged.items() if (at, n) < (own, number)}
        if not earlier:
            return []
        done = set(session.scalars(select(PullRequestRow.number).where(
            PullRequestRow.repository == repository, PullRequestRow.number.in_(earlier))))
    return sorted(earlier - done, key=lambda n: (merged[n], n))


def backfill(runtime: Runtime, client: Github, installation_id: int, repository: str,
             limit: int | None = 100,
             progress: Callable[[int, int], None] | None = None) -> BackfillSummary:
    """Mine the most recent merged PRs, oldest first; PRs already mined are skipped.

    Each PR is its own transaction, so an interruption loses at most the PR in flight and a
    re-run continues where the last one stopped. Rollouts are enqueued once at the end, for
    each chain at its final length, rather than once per step of its growth.
    """
    summary = BackfillSummary(repository)
    source = GitHubSource(client, repository, runtime.settings.data_dir)
    parsed = _config(runtime, source, installation_id)
    summary.config_problem = parsed.problem
    if not parsed.config.enabled:
        summary.disabled = True
        return summary
    numbers = [n for n, _ in source.merged_pull_numbers(limit)]
    summary.candidates = len(numbers)
    done = _mined(runtime, repository)
    due: dict[str, Chain] = {}
    for index, number in enumerate(numbers, start=1):
        if number in done:
            summary.skipped += 1
        else:
            with repository_lock(runtime, repository):
                result = _attach(runtime, client, source, number, parsed)
            summary.mined += 1
            if result.chain is not None and _wants_rollout(result):
                due[result.chain.id] = result.chain
        if progress is not None:
            progress(index, len(numbers))
    for chain in due.values():
        job = enqueue_rollout(runtime, chain)
        if job:
            summary.rollouts.append(job)
    log.info("mining.backfilled", repo=repository, **summary.as_json())
    return summary


def mine_pull_request(installation_id: int, repository: str, number: int) -> dict[str, Any]:
    """rq job: mine one merged PR."""
    runtime = Runtime(Settings.from_env())
    try:
        client = installation_client(runtime.settings, runtime.redis, installation_id)
        outcome = mine(runtime, client, installation_id, repository, number)
        return {"repository": repository, "number": number, "skipped": outcome.skipped,
                "links": outcome.links, "chain": outcome.chain.id if outcome.chain else None,
                "rollout_job": outcome.rollout_job}
    finally:
        runtime.close()


def backfill_repository(installation_id: int, repository: str,
                        limit: int | None = 100) -> dict[str, Any]:
    """rq job: mine a repository's recent merged PRs (after installation)."""
    runtime = Runtime(Settings.from_env())
    try:
        client = installation_client(runtime.settings, runtime.redis, installation_id)
        return backfill(runtime, client, installation_id, repository, limit).as_json()
    finally:
        runtime.close()
