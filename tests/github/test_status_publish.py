"""The status comment on a PR, against the GitHub simulator: one comment, edited in place."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from github import Auth, Github, GithubIntegration, GithubRetry
from redis import Redis

from bot.status import PRStatus, marker, publish
from rollout.state import ChainState
from tests.github.conftest import INSTALLATION_ID
from tests.github_sim import GitHubSimulator, SimComment
from tests.gitrepo import GitRepo

REPO = "octo-org/widgets"


@pytest.fixture
def world(github_sim: GitHubSimulator, git_repo: GitRepo) -> GitHubSimulator:
    github_sim.add_repo("octo-org", "widgets", git_repo.path, INSTALLATION_ID)
    merge = git_repo.pull_request(3, "Add parser", {"src/parse.py": "X = 1\n"})
    github_sim.add_pull(REPO, 3, merge, "Add parser", "Parses things.")
    return github_sim


def installation_client(sim: GitHubSimulator) -> Github:
    integration = GithubIntegration(auth=Auth.AppAuth(sim.app_id, sim.private_key_pem),
                                    base_url=sim.url, retry=GithubRetry(total=3))
    token = integration.get_access_token(INSTALLATION_ID).token
    return Github(auth=Auth.Token(token), base_url=sim.url, retry=GithubRetry(total=3),
                  seconds_between_requests=0, seconds_between_writes=0)


def status(state: str, stage: int | None = None) -> PRStatus:
    return PRStatus(repository=REPO, number=3, chain_id="c-1", chain_prs=(1, 3),
                    state=ChainState(state, stage=stage, stages=2))


def test_created_once_then_edited_and_unchanged_skipped(world: GitHubSimulator,
                                                        redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    issue = installation_client(world).get_repo(REPO).get_issue(3)
    first = publish(issue, status("queued"), world.bot_login, redis)
    assert first.action == "created"
    second = publish(issue, status("running", stage=1), world.bot_login, redis)
    assert (second.action, second.comment_id) == ("edited", first.comment_id)
    again = publish(issue, status("running", stage=1), world.bot_login, redis)
    assert again.action == "unchanged"
    comments = world.comments_on(REPO, 3)
    assert len(comments) == 1
    assert "running (stage 1 of 2)" in comments[0].body and marker(3) in comments[0].body
    assert len(world.requests_to("PATCH", r"/issues/comments/")) == 1


def test_someone_elses_comment_with_the_marker_is_not_taken_over(world: GitHubSimulator,
                                                                 redis_url: str) -> None:
    now = datetime.now(UTC)
    world.comments[1] = SimComment(1, REPO, 3, f"copied {marker(3)}", "mallory", "User", now,
                                   now)
    issue = installation_client(world).get_repo(REPO).get_issue(3)
    assert publish(issue, status("queued"), world.bot_login, Redis.from_url(redis_url)).action \
        == "created"
    assert world.comments[1].body == f"copied {marker(3)}"


def test_a_create_whose_answer_was_lost_is_found_not_repeated(world: GitHubSimulator,
                                                               redis_url: str) -> None:
    # The earlier POST reached GitHub although the job never saw the answer.
    now = datetime.now(UTC)
    world.comments[5] = SimComment(5, REPO, 3, f"old {marker(3)}", world.bot_login, "Bot", now,
                                   now)
    issue = installation_client(world).get_repo(REPO).get_issue(3)
    result = publish(issue, status("accepted"), world.bot_login, Redis.from_url(redis_url))
    assert (result.action, result.comment_id) == ("edited", 5)
    assert len(world.comments_on(REPO, 3)) == 1
    assert world.requests_to("POST", r"/issues/3/comments$") == []


def test_two_jobs_racing_leave_one_comment(world: GitHubSimulator, redis_url: str) -> None:
    errors: list[BaseException] = []

    def job(state: str) -> None:
        try:
            issue = installation_client(world).get_repo(REPO).get_issue(3)
            publish(issue, status(state), world.bot_login, Redis.from_url(redis_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(s,)) for s in ("queued", "running") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(world.comments_on(REPO, 3)) == 1
