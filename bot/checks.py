"""The check run the bot keeps on a merged pull request's merge commit when the repository asks
for it (`check_run: true` in `.github/davinci.yml`).

Its summary is the status comment's text (one renderer: :func:`bot.status.render`); its
conclusion is `success` once a rollout of the PR's chain was accepted and `neutral` otherwise:
nothing decided yet, not eligible, or rejected. A rejected rollout says how well an agent did on
the chain, not that the pull request is wrong, so it never shows as a failure. Like the comment,
the run is edited in place: found by its name and the App's id on that commit, never duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from github import Github, GithubException
from github.Repository import Repository as GhRepository
from redis import Redis

from bot.runtime import Runtime
from bot.status import ContentLimiter, PRStatus, marker, pr_lock, render
from chains.config import RepoConfig, parse_config
from chains.github_source import GitHubSource
from chains.store import PullRequestRow

CHECK_NAME = "daVinci-Agency"
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CheckView:
    """What the check run shows."""

    conclusion: str
    """`success` or `neutral`."""
    title: str
    summary: str


@dataclass(frozen=True)
class CheckPublished:
    action: str
    """`created`, `edited` or `unchanged`."""
    check_run_id: int


def check_view(status: PRStatus) -> CheckView:
    """The check run of ``status``: the comment's text (without its hidden marker) and a
    conclusion that says what is decided."""
    summary = render(status).removesuffix("\n\n" + marker(status.number))
    conclusion, title = _verdict(status)
    return CheckView(conclusion, title, summary)


def _verdict(status: PRStatus) -> tuple[str, str]:
    """`success` only for an accepted rollout; a rejected one measures the agent, not the PR."""
    state = status.state
    if status.ignored:
        return "neutral", "Excluded from chains"
    if not status.chained or state is None:
        return "neutral", "Not in a chain yet"
    if state.name == "accepted":
        return "success", f"Rollout accepted with score {state.score or 0:.2f}"
    if state.name == "rejected":
        score = f" (score {state.score:.2f})" if state.score is not None else ""
        return "neutral", f"Rollout rejected{score}"
    return "neutral", f"Rollout: {state.describe()}"[:120]


def find_check_run(repo: GhRepository, head_sha: str, app_id: int) -> Any | None:
    """The App's own check run of this name on ``head_sha`` (another App may use the name)."""
    for run in repo.get_commit(head_sha).get_check_runs(check_name=CHECK_NAME):
        if run.app.id == app_id:
            return run
    return None


def publish_check(repo: GhRepository, head_sha: str, app_id: int, status: PRStatus,
                  redis: Redis, limiter: ContentLimiter | None = None) -> CheckPublished:
    """Create or edit the check run of ``status.number`` on its merge commit ``head_sha``."""
    view = check_view(status)
    output: dict[str, str | list[dict[str, str | int]]] = {"title": view.title,
                                                           "summary": view.summary}
    with pr_lock(redis, status.repository, status.number):
        existing = find_check_run(repo, head_sha, app_id)
        if existing is not None:
            if (existing.conclusion, existing.output.title, existing.output.summary) == (
                    view.conclusion, view.title, view.summary):
                return CheckPublished("unchanged", existing.id)
            if limiter:
                limiter.acquire()
            existing.edit(status="completed", conclusion=view.conclusion, output=output)
            return CheckPublished("edited", existing.id)
        if limiter:
            limiter.acquire()
        created = repo.create_check_run(name=CHECK_NAME, head_sha=head_sha, status="completed",
                                        conclusion=view.conclusion, output=output)
        return CheckPublished("created", created.id)


def refresh_check(runtime: Runtime, client: Github, status: PRStatus,
                  config: RepoConfig | None = None,
                  limiter: ContentLimiter | None = None) -> CheckPublished | None:
    """Publish ``status`` as the PR's check run when its repository asks for one (``config``,
    read from the default branch when not given); None when it does not, or the PR is not
    mined (no merge commit to put it on)."""
    repository = status.repository
    if config is None:
        source = GitHubSource(client, repository, runtime.settings.data_dir)
        config = parse_config(source.config_text()).config
    app_id = runtime.settings.github_app_id
    if not config.check_run or not app_id:  # without an App id there is no client either
        return None
    with runtime.db.session() as session:
        pr = session.get(PullRequestRow, (repository, status.number))
        merge_commit = pr.merge_commit if pr is not None else None
    if not merge_commit:
        return None
    try:
        published = publish_check(client.get_repo(repository), merge_commit, int(app_id),
                                  status, runtime.redis, limiter)
    except GithubException as exc:
        if exc.status != 403:
            raise
        # An installation made before the App asked for `checks: write` has not granted it
        # yet: the comment stands, and retrying the job would not change GitHub's answer.
        log.warning("check.forbidden", repo=repository, pr=status.number,
                    hint="the installation has not granted the App `checks: write`; an "
                         "owner accepts it under the installation's settings")
        return None
    log.info("check.published", repo=repository, pr=status.number, action=published.action)
    return published
