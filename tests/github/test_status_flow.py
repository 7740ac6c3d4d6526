"""The status comment after mining: `comment: false`, and a broken config reported once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import bot.jobs  # noqa: F401 - registers the status comment after mining
from bot.db import Database
from bot.github import installation_client
from bot.jobs.mining import mine
from bot.runtime import Runtime
from bot.settings import Settings
from tests.github.conftest import INSTALLATION_ID
from tests.github_sim import GitHubSimulator
from tests.gitrepo import GitRepo

REPO = "octo-org/widgets"


@pytest.fixture
def runtime(github_sim: GitHubSimulator, redis_url: str, sqlite_db: Database,
            tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(github_app_id=str(github_sim.app_id),
                        github_private_key=github_sim.private_key_pem,
                        github_api_url=github_sim.url, github_write_pause=0, redis_url=redis_url,
                        data_dir=tmp_path / "data")
    rt = Runtime(settings, _db=sqlite_db)
    yield rt
    rt.close()


def merge(sim: GitHubSimulator, repo: GitRepo, number: int, title: str, body: str = "") -> None:
    sha = repo.pull_request(number, title, {f"src/m{number}.py": f"X = {number}\n",
                                            f"tests/test_m{number}.py": "def test(): pass\n"},
                            squash=True)
    sim.add_pull(REPO, number, sha, title, body)


def test_comment_false_keeps_every_pr_quiet(runtime: Runtime, github_sim: GitHubSimulator,
                                            git_repo: GitRepo) -> None:
    github_sim.add_repo("octo-org", "widgets", git_repo.path, INSTALLATION_ID)
    git_repo.commit("Quiet, please", {".github/davinci.yml": "comment: false\n"})
    merge(github_sim, git_repo, 20, "Add m20")
    merge(github_sim, git_repo, 21, "Follow-up to #20")
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    for number in (20, 21):
        assert mine(runtime, client, INSTALLATION_ID, REPO, number).chain is not None
    assert github_sim.comments_on(REPO, 20) == [] and github_sim.comments_on(REPO, 21) == []


def test_a_broken_config_is_reported_once_with_its_line(runtime: Runtime,
                                                        github_sim: GitHubSimulator,
                                                        git_repo: GitRepo) -> None:
    github_sim.add_repo("octo-org", "widgets", git_repo.path, INSTALLATION_ID)
    git_repo.commit("Break it", {".github/davinci.yml": "enabled: true\nmax_chain_length: [\n"})
    merge(github_sim, git_repo, 30, "Add m30")
    merge(github_sim, git_repo, 31, "Follow-up to #30")
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    for number in (30, 31):
        mine(runtime, client, INSTALLATION_ID, REPO, number)
    [first] = github_sim.comments_on(REPO, 30)
    [second] = github_sim.comments_on(REPO, 31)
    assert ".github/davinci.yml" in first.body and "line 3" in first.body
    assert "could not be used" not in second.body
    assert "#30 → **#31**" in second.body
