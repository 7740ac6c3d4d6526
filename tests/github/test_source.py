"""The GitHub source against the simulator: what mining gets from the API and the mirror."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from github import Auth, Github, GithubRetry

from chains.github_source import (
    GitHubSource,
    NotMerged,
    PullRequestNotFound,
    installation_token,
)
from chains.mirror import Mirror, MirrorError
from chains.model import LineRange
from tests.github.conftest import INSTALLATION_ID
from tests.github_sim import GitHubSimulator
from tests.gitrepo import GitRepo

REPO = "octo-org/widgets"


@pytest.fixture
def client(github_sim: GitHubSimulator) -> Github:
    token = github_sim.mint_token(INSTALLATION_ID)[0]
    return Github(auth=Auth.Token(token), base_url=github_sim.url, retry=GithubRetry(total=3),
                  seconds_between_requests=0, seconds_between_writes=0)


@pytest.fixture
def world(github_sim: GitHubSimulator, git_repo: GitRepo) -> GitRepo:
    github_sim.add_repo("octo-org", "widgets", git_repo.path, INSTALLATION_ID)
    github_sim.add_issue(REPO, 5, "Parser crashes on empty input", "Traceback ...")
    merge = git_repo.pull_request(
        10, "Add parser", {"src/parse.py": "def parse(text):\n    return text.split()\n"},
        messages=("Start parser",))
    github_sim.add_pull(REPO, 10, merge, "Add parser", "Closes #5", labels=("feature",),
                        closes=(5,))
    squash = git_repo.pull_request(
        11, "fix: parse empty input",
        {"src/parse.py": "def parse(text):\n    return (text or '').split()\n",
         "tests/test_parse.py": "def test_empty():\n    assert parse('') == []\n"},
        squash=True)
    github_sim.add_pull(REPO, 11, squash, "fix: parse empty input", "Fixes #5 as well",
                        labels=("bug",))
    return git_repo


def test_pull_request_details(world: GitRepo, client: Github, tmp_path: Path) -> None:
    source = GitHubSource(client, REPO, tmp_path / "data")
    pr = source.pull_request(11)
    assert (pr.number, pr.title, pr.labels, pr.author) == (11, "fix: parse empty input",
                                                          ("bug",), "octocat")
    assert pr.merge_commit == world.head("main")
    files = {f.path: f for f in pr.files}
    assert files["src/parse.py"].old_ranges == (LineRange(2, 2),)
    assert files["src/parse.py"].new_ranges == (LineRange(2, 2),)
    assert files["tests/test_parse.py"].status == "added"
    assert [c.sha for c in pr.commits] == [pr.merge_commit]
    assert pr.linked_issues == ()  # "Fixes #5 as well" is text; GitHub did not link it

    linked = source.pull_request(10)
    assert linked.linked_issues == (5,)
    assert "Parser crashes on empty input" in linked.issue_texts[5]
    assert [c.message for c in linked.commits] == ["Start parser", "Add parser"]


def test_unavailable_graphql_means_no_answer(world: GitRepo, client: Github,
                                             github_sim: GitHubSimulator,
                                             tmp_path: Path) -> None:
    github_sim.inject("POST", r"^/graphql$", 502, times=10)
    assert GitHubSource(client, REPO, tmp_path).linked_issues(10) is None


def test_missing_and_unmerged(world: GitRepo, client: Github, github_sim: GitHubSimulator,
                              tmp_path: Path) -> None:
    source = GitHubSource(client, REPO, tmp_path)
    with pytest.raises(PullRequestNotFound, match="#99"):
        source.pull_request(99)
    github_sim.repo(REPO).pulls[10].merged = False
    with pytest.raises(NotMerged):
        source.pull_request(10)


def test_config_text_at_default_branch(world: GitRepo, client: Github, tmp_path: Path) -> None:
    source = GitHubSource(client, REPO, tmp_path)
    assert source.config_text() is None
    world.commit("Configure", {".github/davinci.yml": "enabled: false\n"})
    assert source.config_text() == "enabled: false\n"


def test_mirror_is_fetched_incrementally(world: GitRepo, client: Github,
                                         github_sim: GitHubSimulator, tmp_path: Path) -> None:
    source = GitHubSource(client, REPO, tmp_path / "data")
    mirror, pr10 = source.sync_mirror(source.pull_request(10))
    assert mirror.path == tmp_path / "data" / "mirrors" / "octo-org" / "widgets.git"
    assert pr10.base_commit == world.head(f"{pr10.merge_commit}^1")
    assert mirror.has(pr10.merge_commit) and not mirror.has(world.head("main"))

    _, pr11 = source.sync_mirror(source.pull_request(11))
    assert pr11.base_commit == pr10.merge_commit
    assert mirror.fetch([pr10.merge_commit, pr11.merge_commit]) == 0  # nothing new to ask for
    blame = subprocess.run(["git", "--git-dir", str(mirror.path), "blame", "--porcelain",
                            pr11.base_commit, "--", "src/parse.py"], capture_output=True,
                           text=True, check=True).stdout
    assert blame.split()[0] in {c.sha for c in pr10.commits}


def test_token_never_lands_in_the_mirror(tmp_path: Path) -> None:
    mirror = Mirror.at(tmp_path, REPO, "https://x-access-token:ghs_secret@github.invalid/o/r.git")
    mirror.ensure()
    config = (mirror.path / "config").read_text()
    assert "ghs_secret" not in config and "https://github.invalid/o/r.git" in config
    with pytest.raises(MirrorError) as failed:
        mirror.fetch(["a" * 40], token="ghs_other_secret")
    assert "ghs_other_secret" not in str(failed.value)
    assert "ghs_other_secret" not in (mirror.path / "config").read_text()


def test_repository_names_cannot_escape_the_data_dir(tmp_path: Path) -> None:
    with pytest.raises(MirrorError):
        Mirror.at(tmp_path, "../etc", "/tmp/x")


def test_installation_token_of_a_client(client: Github) -> None:
    assert (installation_token(client) or "").startswith("ghs_")


def test_merged_pulls_oldest_first(world: GitRepo, client: Github, tmp_path: Path) -> None:
    source = GitHubSource(client, REPO, tmp_path)
    assert [n for n, _ in source.merged_pull_numbers(None)] == [10, 11]
    assert [n for n, _ in source.merged_pull_numbers(1)] == [11]


def test_renamed_and_binary_files(world: GitRepo, client: Github, github_sim: GitHubSimulator,
                                  tmp_path: Path) -> None:
    world.branch("pr-12")
    world.rename("src/parse.py", "src/parser.py")
    world.commit("Rename, add a logo", {"logo.png": b"\x89PNG\x00\x01\x02\x03"})
    github_sim.add_pull(REPO, 12, world.merge_pr("pr-12", 12, "Rename parser"),
                        "Rename parser", None)
    pr = GitHubSource(client, REPO, tmp_path).pull_request(12)
    files = {f.path: f for f in pr.files}
    renamed, logo = files["src/parser.py"], files["logo.png"]
    assert (renamed.status, renamed.old_path, renamed.binary) == ("renamed", "src/parse.py",
                                                                 False)
    assert renamed.old_ranges == () and renamed.new_ranges == ()
    assert (logo.status, logo.binary) == ("added", True)
    assert pr.body == ""
