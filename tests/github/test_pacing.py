"""Writes to GitHub are a second apart and comments limited per minute unless the settings say
otherwise; reads are not paced.

The other tests talk to the simulator with no pause (tests/conftest.py); this one checks the
pause GitHub itself gets."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from bot.github import installation_client
from bot.settings import DEFAULT_GITHUB_WRITE_PAUSE, Settings, SettingsError
from bot.status import ContentLimiter
from tests.github.conftest import INSTALLATION_ID
from tests.github_sim import GitHubSimulator
from tests.gitrepo import GitRepo

REPO = "octo-org/widgets"


def write_twice_then_read(settings: Settings, sim: GitHubSimulator, git_repo: GitRepo
                          ) -> tuple[float, float]:
    """Seconds between the two writes, and between the second write and the read after it,
    as the simulator received them."""
    sim.add_repo("octo-org", "widgets", git_repo.path, INSTALLATION_ID)
    sim.add_pull(REPO, 3, git_repo.pull_request(3, "Add parser", {"src/p.py": "X = 1\n"}),
                 "Add parser", "")
    client = installation_client(settings, Redis.from_url(settings.redis_url), INSTALLATION_ID)
    issue = client.get_repo(REPO).get_issue(3)
    issue.create_comment("first").edit("second")
    assert [c.body for c in sim.comments_on(REPO, 3)] == ["second"]
    client.get_repo(REPO).get_issue(3)
    create, edit = (sim.requests_to("POST", r"/issues/3/comments$")
                    + sim.requests_to("PATCH", r"/issues/comments/"))
    read = sim.requests_to("GET", r"/issues/3$")[-1]
    return edit.at - create.at, read.at - edit.at


def test_writes_to_github_are_a_second_apart_by_default(
        settings: Settings, github_sim: GitHubSimulator, git_repo: GitRepo) -> None:
    assert Settings.from_env({}).github_write_pause == DEFAULT_GITHUB_WRITE_PAUSE == 1.0
    paced = settings.with_overrides(github_write_pause=DEFAULT_GITHUB_WRITE_PAUSE)
    between_writes, before_read = write_twice_then_read(paced, github_sim, git_repo)
    assert between_writes >= 0.95
    assert before_read < 0.9, "a read waits for no pause"


def test_the_pause_between_writes_is_a_setting(
        settings: Settings, github_sim: GitHubSimulator, git_repo: GitRepo) -> None:
    assert Settings.from_env({"DAVINCI_GITHUB_WRITE_PAUSE": "0"}).github_write_pause == 0.0
    between_writes, _ = write_twice_then_read(settings.with_overrides(github_write_pause=0),
                                              github_sim, git_repo)
    assert between_writes < 0.9


@pytest.mark.parametrize("value", ["soon", "-1", "61"])
def test_a_malformed_pause_is_named(value: str) -> None:
    with pytest.raises(SettingsError, match="DAVINCI_GITHUB_WRITE_PAUSE"):
        Settings.from_env({"DAVINCI_GITHUB_WRITE_PAUSE": value})


def test_comments_beyond_the_minutes_budget_wait_for_the_next_minute(redis_url: str) -> None:
    assert Settings.from_env({}).github_writes_per_minute == 20
    assert Settings.from_env({"DAVINCI_GITHUB_WRITES_PER_MINUTE": "80"}
                             ).github_writes_per_minute == 80
    redis = Redis.from_url(redis_url)
    for _ in range(3):  # a minute that ends in the middle starts a new budget: try again
        window = int(time.time() // 60)
        limiter = ContentLimiter(redis, f"octo-org-{window}", per_minute=2, max_wait=0)
        other = ContentLimiter(redis, f"someone-else-{window}", per_minute=2, max_wait=0)
        limiter.acquire()
        limiter.acquire()
        other.acquire()  # each installation has a budget of its own
        try:
            limiter.acquire()
        except TimeoutError:
            if int(time.time() // 60) == window:
                return
            continue
        if int(time.time() // 60) == window:
            raise AssertionError("a third comment in the minute went out at once")
    raise AssertionError("no minute lasted long enough to check the budget")


@pytest.mark.parametrize("value", ["0", "many", "2.5"])
def test_a_malformed_budget_is_named(value: str) -> None:
    with pytest.raises(SettingsError, match="DAVINCI_GITHUB_WRITES_PER_MINUTE"):
        Settings.from_env({"DAVINCI_GITHUB_WRITES_PER_MINUTE": value})
