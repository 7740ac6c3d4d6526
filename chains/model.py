"""Domain values of the PR graph. Plain frozen dataclasses; persistence lives elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class LinkKind(StrEnum):
    REFERENCES = "references"
    """The later PR names the earlier one (#N, URL, follow-up, revert, part N of)."""
    SHARES_ISSUE = "shares_issue"
    """Both PRs close or mention the same issue."""
    FIXES = "fixes"
    """The later PR is a fix and changes lines `git blame` attributes to the earlier PR."""
    SAME_AREA = "same_area"
    """Heavy overlap of changed files within a time window; weak, breaks ties only."""


MIN_VERIFIABLE = 2
"""Stages a chain needs that its rollout can verify (a one-stage chain needs its one). Only a
PR that changes tests makes one (its hidden tests are the test files it changed), so mining
calls a chain eligible only with that many such PRs, and rollout validation asks as many
stages to verify."""


def verifiable_needed(stages: int) -> int:
    """How many of a chain's ``stages`` must be verifiable (see MIN_VERIFIABLE)."""
    return min(MIN_VERIFIABLE, stages)


UNTRACED = "0" * 40
"""The commit blame gives a line whose origin it could not trace (git's null id): someone's
work, no one's that is known."""


@dataclass(frozen=True)
class LineRange:
    start: int
    end: int
    """Inclusive, 1-based."""


@dataclass(frozen=True)
class Hunk:
    """One hunk's extent on each side, as its header gives it (context lines included)."""

    old: LineRange | None
    """The base version's lines it covers; None for lines inserted between two others."""
    new: LineRange | None
    """The merged version's lines it covers; None for lines deleted."""


@dataclass(frozen=True)
class FileChange:
    """One file a PR changed, with the line ranges it touched on each side."""

    path: str
    status: str = "modified"
    """`added`, `modified`, `removed` or `renamed`."""
    old_path: str | None = None
    binary: bool = False
    additions: int = 0
    deletions: int = 0
    old_ranges: tuple[LineRange, ...] = ()
    """Lines of the base version that the PR deleted or modified."""
    new_ranges: tuple[LineRange, ...] = ()
    """Lines of the merged version that the PR added or modified."""
    added_lines: tuple[str, ...] = ()
    removed_lines: tuple[str, ...] = ()
    """The lines themselves, when the reader asked for them (`chains.diff`)."""
    hunks: tuple[Hunk, ...] = ()
    """Where each hunk sits on both sides, so a removed line can be followed to what
    replaced it."""


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str
    author: str = ""


@dataclass(frozen=True)
class PullRequest:
    """A merged pull request, as much as mining and rollouts need of it."""

    repository: str
    number: int
    title: str
    body: str = ""
    author: str = ""
    labels: tuple[str, ...] = ()
    base_commit: str = ""
    """The commit the PR's changes apply to (first parent of the merge)."""
    merge_commit: str = ""
    """The commit on the default branch that holds the PR's changes."""
    merged_at: datetime | None = None
    commits: tuple[Commit, ...] = ()
    files: tuple[FileChange, ...] = ()
    linked_issues: tuple[int, ...] = ()
    """Issues the PR closes or mentions."""
    issue_texts: dict[int, str] = field(default_factory=dict, compare=False, hash=False)
    """Title and body of linked issues where the source knows them."""


@dataclass(frozen=True)
class Link:
    """An edge `earlier -> later` in the PR graph."""

    earlier: int
    later: int
    kind: LinkKind
    evidence: str
    strength: float


@dataclass(frozen=True)
class Chain:
    """A path in the PR graph; `kinds[i]` is the kind of the link prs[i] -> prs[i+1]."""

    id: str
    repository: str
    prs: tuple[int, ...]
    kinds: tuple[LinkKind, ...]
    eligible: bool = False
