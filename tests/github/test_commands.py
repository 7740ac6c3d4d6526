"""`/davinci` commands run against the simulator: each idempotent, answered at most once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from github import Github
from rq import Queue

from bot.db import Database
from bot.github import installation_client
from bot.jobs.commands import execute
from bot.runtime import ROLLOUT_QUEUE, Runtime
from bot.sample import build_sample_repository
from bot.settings import Settings
from chains.gitsource import GitBlame, GitHistory
from chains.mining import attach_pull_request
from chains.store import PullRequestRow
from tests.github.conftest import INSTALLATION_ID
from tests.github_sim import GitHubSimulator

REPO = "textkit-dev/textkit"


@pytest.fixture
def world(github_sim: GitHubSimulator, redis_url: str, sqlite_db: Database,
          tmp_path: Path) -> Iterator[tuple[Runtime, Github]]:
    sample = build_sample_repository(tmp_path / "textkit")
    github_sim.add_repo("textkit-dev", "textkit", sample.path, INSTALLATION_ID)
    for pr in sample.prs:
        github_sim.add_pull(REPO, pr.number, sample.merge_commits[pr.number], pr.title,
                            pr.body)
    for pr in GitHistory(sample.path, repository=REPO).pull_requests():
        with sqlite_db.session() as session:
            attach_pull_request(session, pr, GitBlame(sample.path))
    settings = Settings(github_app_id=str(github_sim.app_id),
                        github_private_key=github_sim.private_key_pem,
                        github_api_url=github_sim.url, redis_url=redis_url, data_dir=tmp_path,
                        github_write_pause=0)
    runtime = Runtime(settings, _db=sqlite_db)
    yield runtime, installation_client(settings, runtime.redis, INSTALLATION_ID)
    runtime.close()


def test_help_is_answered_once_per_comment(world: tuple[Runtime, Github],
                                           github_sim: GitHubSimulator) -> None:
    runtime, client = world
    first = execute(runtime, client, REPO, 4, "help", 501, "alice")
    again = execute(runtime, client, REPO, 4, "help", 501, "alice")
    assert first["replied"] and not again["replied"]
    [reply] = github_sim.comments_on(REPO, 4)
    assert "`/davinci rollout`" in reply.body and reply.user == github_sim.bot_login


def test_unknown_command_gets_the_help(world: tuple[Runtime, Github],
                                       github_sim: GitHubSimulator) -> None:
    runtime, client = world
    execute(runtime, client, REPO, 4, "frobnicate", 502, "alice")
    assert "is not a command I know" in github_sim.comments_on(REPO, 4)[0].body


def test_status_creates_then_leaves_the_comment_alone(world: tuple[Runtime, Github],
                                                      github_sim: GitHubSimulator) -> None:
    runtime, client = world
    assert execute(runtime, client, REPO, 4, "status", 503, "alice")["status"] == "created"
    assert execute(runtime, client, REPO, 4, "status", 504, "alice")["status"] == "unchanged"
    [comment] = github_sim.comments_on(REPO, 4)
    assert "#1 → #2 → **#4**" in comment.body and "**Rollout:** eligible" in comment.body


def test_rollout_enqueues_once_per_command(world: tuple[Runtime, Github]) -> None:
    runtime, client = world
    first = execute(runtime, client, REPO, 4, "rollout", 505, "alice")
    again = execute(runtime, client, REPO, 4, "rollout", 505, "alice")
    assert first["enqueued"] and not again["enqueued"]
    assert Queue(ROLLOUT_QUEUE, connection=runtime.redis).job_ids == [first["job"]]


def test_rollout_of_a_pr_outside_any_eligible_chain_is_explained(
        world: tuple[Runtime, Github], github_sim: GitHubSimulator) -> None:
    runtime, client = world
    result = execute(runtime, client, REPO, 7, "rollout", 506, "alice")
    assert result["replied"]
    assert "not in a chain that is eligible" in github_sim.comments_on(REPO, 7)[0].body
    assert Queue(ROLLOUT_QUEUE, connection=runtime.redis).job_ids == []


def test_ignore_excludes_the_pr_and_says_so(world: tuple[Runtime, Github],
                                            github_sim: GitHubSimulator) -> None:
    runtime, client = world
    execute(runtime, client, REPO, 6, "ignore", 507, "alice")
    execute(runtime, client, REPO, 6, "ignore", 507, "alice")
    with runtime.db.session() as session:
        row = session.get(PullRequestRow, (REPO, 6))
        assert row is not None and row.ignored
    [comment] = github_sim.comments_on(REPO, 6)
    assert "excluded from chains" in comment.body
