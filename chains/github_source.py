"""Pull requests from GitHub's API, as the chain miner needs them.

The source takes an installation-scoped PyGithub client; it never authenticates by itself.
Linked issues come from GitHub's own resolution (GraphQL `closingIssuesReferences`); when that
answer is unavailable the caller falls back to the text rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from github import Github, GithubException, UnknownObjectException
from github.PullRequest import PullRequest as GhPullRequest
from github.Repository import Repository as GhRepository
from requests import RequestException

from chains.diff import Hunks, patch_hunks
from chains.mirror import Mirror
from chains.model import Commit, FileChange, PullRequest

log = structlog.get_logger(__name__)

CONFIG_PATH = ".github/davinci.yml"

CLOSING_ISSUES_QUERY = """
query($owner: String!, $name: String!, $number: Int!, $after: String) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      closingIssuesReferences(first: 50, after: $after) {
        nodes { number title body repository { nameWithOwner } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}
"""


class SourceError(RuntimeError):
    """GitHub could not give what mining needs; the message says what and for which PR."""


class PullRequestNotFound(SourceError):
    pass


class NotMerged(SourceError):
    pass


@dataclass(frozen=True)
class LinkedIssues:
    numbers: tuple[int, ...]
    texts: dict[int, str]


@dataclass(frozen=True)
class RepositoryInfo:
    id: int
    full_name: str
    default_branch: str
    clone_url: str
    private: bool


class GitHubSource:
    """One repository on GitHub, read through an installation client."""

    def __init__(self, client: Github, repository: str, data_dir: Path) -> None:
        self.client = client
        self.repository = repository
        self.data_dir = data_dir
        self._repo: GhRepository | None = None
        self.log = log.bind(repo=repository)

    @property
    def repo(self) -> GhRepository:
        if self._repo is None:
            try:
                self._repo = self.client.get_repo(self.repository)
            except UnknownObjectException as exc:
                raise SourceError(f"{self.repository}: not found, or the App cannot "
                                  "see it") from exc
        return self._repo

    def info(self) -> RepositoryInfo:
        repo = self.repo
        return RepositoryInfo(repo.id, repo.full_name, repo.default_branch, repo.clone_url,
                              repo.private)

    def config_text(self) -> str | None:
        """`.github/davinci.yml` at the default branch, or None when the file is absent."""
        try:
            content = self.repo.get_contents(CONFIG_PATH, ref=self.repo.default_branch)
        except UnknownObjectException:
            return None
        if isinstance(content, list):
            return None
        return content.decoded_content.decode("utf-8", errors="replace")

    def pull_request(self, number: int, linked: LinkedIssues | None = None) -> PullRequest:
        """The merged PR `number` with commits, files and the issues GitHub links to it."""
        pull = self._pull(number)
        if not pull.merged:
            raise NotMerged(f"{self.repository}#{number} is not merged")
        if linked is None:
            linked = self.linked_issues(number) or LinkedIssues((), {})
        merge_sha = pull.merge_commit_sha or ""
        return PullRequest(
            repository=self.repository, number=number, title=pull.title or "",
            body=pull.body or "", author=pull.user.login if pull.user else "",
            labels=tuple(label.name for label in pull.labels),
            base_commit=pull.base.sha, merge_commit=merge_sha, merged_at=pull.merged_at,
            commits=tuple(self._commits(pull)), files=tuple(self._files(pull)),
            linked_issues=linked.numbers, issue_texts=dict(linked.texts))

    def sync_mirror(self, pr: PullRequest, token: str | None = None) -> tuple[Mirror,
                                                                               PullRequest]:
        """Fetch `pr`'s merge commit into the local mirror; `pr` gets its base commit.

        The base is the merge commit's first parent: the default branch just before the PR
        landed, which is where `git blame` must look (GitHub's `base.sha` can be older).
        """
        mirror = self.mirror()
        if not pr.merge_commit:
            raise SourceError(f"{self.repository}#{pr.number} has no merge commit")
        mirror.fetch([pr.merge_commit], token=token)
        return mirror, replace(pr, base_commit=mirror.first_parent(pr.merge_commit))

    def merged_at(self, number: int) -> datetime | None:
        """When PR ``number`` was merged (one request); None for an issue or an unmerged PR."""
        try:
            pull = self._pull(number)
        except PullRequestNotFound:
            return None
        return pull.merged_at if pull.merged else None

    def _pull(self, number: int) -> GhPullRequest:
        try:
            return self.repo.get_pull(number)
        except UnknownObjectException as exc:
            raise PullRequestNotFound(f"{self.repository}#{number}: no such pull "
                                      "request") from exc

    def _commits(self, pull: GhPullRequest) -> Iterator[Commit]:
        for commit in pull.get_commits():
            author = commit.commit.author.name if commit.commit.author else ""
            yield Commit(commit.sha, commit.commit.message or "", author or "")

    def _files(self, pull: GhPullRequest) -> Iterator[FileChange]:
        for item in pull.get_files():
            patch = item.patch
            hunks = patch_hunks(patch) if patch else Hunks()
            binary = patch is None and item.changes == 0 and item.status != "renamed"
            yield FileChange(path=item.filename, status=item.status,
                             old_path=item.previous_filename, binary=binary,
                             additions=item.additions, deletions=item.deletions,
                             old_ranges=hunks.old_ranges, new_ranges=hunks.new_ranges,
                             hunks=hunks.spans)

    def linked_issues(self, number: int) -> LinkedIssues | None:
        """GitHub's closing references for PR `number`, or None when GraphQL cannot answer."""
        owner, _, name = self.repository.partition("/")
        numbers: list[int] = []
        texts: dict[int, str] = {}
        after: str | None = None
        while True:
            variables: dict[str, Any] = {"owner": owner, "name": name, "number": number,
                                         "after": after}
            try:
                _, data = self.client.requester.graphql_query(CLOSING_ISSUES_QUERY, variables)
            except (GithubException, RequestException) as exc:
                self.log.warning("github.closing_references_unavailable", pr=number,
                                 error=type(exc).__name__)
                return None
            refs = (((data.get("data") or {}).get("repository") or {}).get("pullRequest")
                    or {}).get("closingIssuesReferences")
            if refs is None:
                return None
            for node in refs.get("nodes") or []:
                same_repo = (node.get("repository") or {}).get("nameWithOwner", "").lower() \
                    == self.repository.lower()
                if same_repo and isinstance(node.get("number"), int):
                    numbers.append(node["number"])
                    texts[node["number"]] = f"{node.get('title') or ''}\n\n{node.get('body') or ''}"
            page = refs.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return LinkedIssues(tuple(numbers), texts)
            after = page.get("endCursor")

    def merged_pull_numbers(self, limit: int | None) -> list[tuple[int, datetime]]:
        """The most recently merged PRs (at most `limit`), oldest first."""
        found: list[tuple[int, datetime]] = []
        pulls = self.repo.get_pulls(state="closed", sort="updated", direction="desc")
        for pull in pulls:
            if pull.merged_at is not None:
                found.append((pull.number, pull.merged_at))
                if limit is not None and len(found) >= limit:
                    break
        found.sort(key=lambda item: (item[1], item[0]))
        return found

    def mirror(self) -> Mirror:
        info = self.info()
        return Mirror.at(self.data_dir, info.full_name, info.clone_url).ensure()


def installation_token(client: Github) -> str | None:
    """The token the client authenticates with, for git over https; None if it has none."""
    auth = client.requester.auth
    token = getattr(auth, "token", None) if auth is not None else None
    return token if isinstance(token, str) else None
