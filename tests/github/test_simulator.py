"""PyGithub against the simulator: the client talks to it exactly as it talks to GitHub."""

from __future__ import annotations

import base64
import time

import pytest
from github import Auth, Github, GithubException, GithubIntegration, GithubRetry

from tests.github.conftest import INSTALLATION_ID
from tests.github_sim import GitHubSimulator
from tests.gitrepo import GitRepo


def _integration(sim: GitHubSimulator, key: str | None = None) -> GithubIntegration:
    auth = Auth.AppAuth(sim.app_id, key or sim.private_key_pem)
    return GithubIntegration(auth=auth, base_url=sim.url, retry=GithubRetry(total=5),
                             seconds_between_requests=0, seconds_between_writes=0)


@pytest.fixture
def world(github_sim: GitHubSimulator, git_repo: GitRepo) -> GitHubSimulator:
    """Three merged PRs: a merge commit, a squash, a rename with a binary file."""
    github_sim.add_repo("octo-org", "widgets", git_repo.path, INSTALLATION_ID)
    github_sim.add_issue("octo-org/widgets", 5, "Widgets crash", "Stack trace ...")
    merge = git_repo.pull_request(10, "Add parser",
                                  {"src/parse.py": "def parse():\n    return 1\n"},
                                  messages=("Start parser",))
    github_sim.add_pull("octo-org/widgets", 10, merge, "Add parser", "Closes #5",
                        labels=("feature",), closes=(5,))
    squash = git_repo.pull_request(11, "fix: parser returns 2",
                                   {"src/parse.py": "def parse():\n    return 2\n"}, squash=True)
    github_sim.add_pull("octo-org/widgets", 11, squash, "fix: parser returns 2", None,
                        labels=("bug",))
    git_repo.branch("pr-12")
    git_repo.rename("src/parse.py", "src/parser.py")
    git_repo.commit("Rename and add logo", {"logo.png": b"\x89PNG\x00\x01\x02"})
    merge12 = git_repo.merge_pr("pr-12", 12, "Rename parser")
    github_sim.add_pull("octo-org/widgets", 12, merge12, "Rename parser", "Part 2 of #10")
    git_repo.commit("Add config", {".github/davinci.yml": "enabled: true\n"})
    return github_sim


def test_app_jwt_mints_installation_token(world: GitHubSimulator) -> None:
    integration = _integration(world)
    assert integration.get_app().slug == "davinci-agency"
    assert [i.id for i in integration.get_installations()] == [INSTALLATION_ID]
    token = integration.get_access_token(INSTALLATION_ID)
    assert token.token.startswith("ghs_") and token.expires_at is not None
    assert world.requests_to("POST", r"/access_tokens$")[0].headers["authorization"] == \
        "Bearer <redacted>"


def test_jwt_signed_by_another_key_is_refused(world: GitHubSimulator) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()
    with pytest.raises(GithubException) as caught:
        _integration(world, other).get_access_token(INSTALLATION_ID)
    assert caught.value.status == 401


def test_expired_jwt_is_refused(world: GitHubSimulator) -> None:
    auth = Auth.AppAuth(world.app_id, world.private_key_pem, jwt_expiry=15, jwt_issued_at=-700)
    integration = GithubIntegration(auth=auth, base_url=world.url)
    with pytest.raises(GithubException) as caught:
        integration.get_access_token(INSTALLATION_ID)
    assert caught.value.status == 401
    assert "exp" in str(caught.value.data)


def test_repository_resources_through_pygithub(world: GitHubSimulator) -> None:
    gh = _integration(world).get_github_for_installation(INSTALLATION_ID)
    repo = gh.get_repo("octo-org/widgets")
    assert repo.default_branch == "main" and repo.full_name == "octo-org/widgets"
    config = repo.get_contents(".github/davinci.yml", ref="main")
    assert not isinstance(config, list)
    assert config.decoded_content == b"enabled: true\n"
    with pytest.raises(GithubException) as missing:
        repo.get_contents("nope.yml")
    assert missing.value.status == 404

    pr = repo.get_pull(10)
    assert (pr.title, pr.body, pr.merged, pr.user.login) == ("Add parser", "Closes #5",
                                                            True, "octocat")
    assert [label.name for label in pr.labels] == ["feature"]
    assert [c.commit.message for c in pr.get_commits()] == ["Start parser", "Add parser"]
    (added,) = pr.get_files()
    assert (added.filename, added.status, added.additions) == ("src/parse.py", "added", 2)
    assert added.patch.startswith("@@ -0,0 +1,2 @@")

    squash = repo.get_pull(11)
    assert squash.merge_commit_sha == squash.head.sha
    assert [c.sha for c in squash.get_commits()] == [squash.merge_commit_sha]

    files = {f.filename: f for f in repo.get_pull(12).get_files()}
    assert files["src/parser.py"].status == "renamed"
    assert files["src/parser.py"].previous_filename == "src/parse.py"
    assert files["logo.png"].status == "added" and files["logo.png"].patch is None

    issue = repo.get_issue(5)
    assert issue.pull_request is None and issue.title == "Widgets crash"
    assert repo.get_issue(10).pull_request is not None


def test_pulls_are_paginated_with_link_headers(world: GitHubSimulator) -> None:
    gh = Github(auth=Auth.Token(world.mint_token(INSTALLATION_ID)[0]), base_url=world.url,
                per_page=2, seconds_between_requests=0)
    pulls = gh.get_repo("octo-org/widgets").get_pulls(state="closed", sort="updated",
                                                      direction="desc")
    assert [p.number for p in pulls] == [12, 11, 10]
    pages = world.requests_to("GET", r"/pulls$")
    assert len(pages) == 2 and pages[1].query["page"] == ["2"]
    assert [p.number for p in gh.get_repo("octo-org/widgets").get_pulls(
        state="closed", sort="updated", direction="asc")] == [10, 11, 12]


def test_comments_are_created_listed_and_edited(world: GitHubSimulator) -> None:
    gh = _integration(world).get_github_for_installation(INSTALLATION_ID)
    issue = gh.get_repo("octo-org/widgets").get_issue(11)
    comment = issue.create_comment("hello <!-- marker -->")
    assert comment.user.login == "davinci-agency[bot]" and comment.user.type == "Bot"
    comment.edit("hello again <!-- marker -->")
    assert [c.body for c in issue.get_comments()] == ["hello again <!-- marker -->"]
    assert [c.body for c in world.comments_on("octo-org/widgets", 11)] == [
        "hello again <!-- marker -->"]


def test_graphql_closing_issues_references(world: GitHubSimulator) -> None:
    gh = _integration(world).get_github_for_installation(INSTALLATION_ID)
    query = """query($owner: String!, $name: String!, $number: Int!) {
      repository(owner: $owner, name: $name) {
        pullRequest(number: $number) {
          closingIssuesReferences(first: 10) {
            nodes { number title repository { nameWithOwner } }
            pageInfo { hasNextPage endCursor }
          }
        }
      }
    }"""
    _, data = gh.requester.graphql_query(query, {"owner": "octo-org", "name": "widgets",
                                                 "number": 10})
    refs = data["data"]["repository"]["pullRequest"]["closingIssuesReferences"]
    assert refs["nodes"] == [{"number": 5, "title": "Widgets crash",
                              "repository": {"nameWithOwner": "octo-org/widgets"}}]
    assert refs["pageInfo"]["hasNextPage"] is False
    with pytest.raises(GithubException) as missing:
        gh.requester.graphql_query(query, {"owner": "octo-org", "name": "widgets",
                                           "number": 99})
    assert missing.value.status == 404


@pytest.mark.parametrize("limit", ["secondary", "primary", "too_many"])
def test_rate_limits_are_waited_out(world: GitHubSimulator, limit: str) -> None:
    gh = _integration(world).get_github_for_installation(INSTALLATION_ID)
    if limit == "secondary":
        world.secondary_rate_limit("GET", r"/pulls/10$", retry_after=1)
    elif limit == "primary":
        world.primary_rate_limit("GET", r"/pulls/10$", reset_in=1)
    else:
        world.too_many_requests("GET", r"/pulls/10$", retry_after=1)
    started = time.monotonic()
    assert gh.get_repo("octo-org/widgets").get_pull(10).number == 10
    elapsed = time.monotonic() - started
    statuses = [r.status for r in world.requests_to("GET", r"/pulls/10$")]
    assert statuses[0] in (403, 429) and statuses[-1] == 200
    assert elapsed >= 0.9, "the client retried before the limit said it could"


def test_server_errors_are_retried(world: GitHubSimulator) -> None:
    gh = _integration(world).get_github_for_installation(INSTALLATION_ID)
    world.inject("GET", r"/pulls/11$", 502, times=2)
    assert gh.get_repo("octo-org/widgets").get_pull(11).number == 11
    assert [r.status for r in world.requests_to("GET", r"/pulls/11$")] == [502, 502, 200]


def test_contents_are_base64_like_github(world: GitHubSimulator) -> None:
    token = world.mint_token(INSTALLATION_ID)[0]
    gh = Github(auth=Auth.Token(token), base_url=world.url)
    raw = gh.get_repo("octo-org/widgets").get_contents("README.md").raw_data
    assert raw["encoding"] == "base64" and base64.b64decode(raw["content"]) == b"# widgets\n"


def test_unknown_token_is_bad_credentials(world: GitHubSimulator) -> None:
    gh = Github(auth=Auth.Token("ghs_not_a_token"), base_url=world.url, retry=None)
    with pytest.raises(GithubException) as caught:
        gh.get_repo("octo-org/widgets")
    assert caught.value.status == 401
