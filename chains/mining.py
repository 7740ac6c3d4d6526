"""Attaching one merged PR to the graph: its links, then the chain it extends or starts.

Work per PR is proportional to that PR: every lookup goes through an index (PR numbers it
mentions, issues it names, commits blame points at, files it touches), never a history scan.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from chains import text
from chains.config import RepoConfig
from chains.model import Chain, FileChange, LineRange, Link, LinkKind, PullRequest
from chains.store import (
    ChainRow,
    CommitRow,
    FileTouchRow,
    IssueRefRow,
    LinkRow,
    MemberRow,
    PullRequestRow,
)

SAME_AREA_WINDOW = timedelta(days=30)
SAME_AREA_OVERLAP = 0.5
SAME_AREA_RECENT = 20
"""Earlier PRs per file considered for `same_area` (the most recent ones)."""
SAME_AREA_MAX_FILES = 200
TEST_PATH_PARTS = ("test/", "tests/", "testing/", "__tests__/", "spec/")
DOC_PATH_PARTS = ("docs/", "doc/", "documentation/")
DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")
DOC_NAMES = ("readme", "changes", "changelog", "history", "news", "authors", "contributing",
             "license", "copying")
FIX_SHARE = 0.25
"""A fix links to an earlier PR only if that PR wrote at least this share of the lines the fix
changes: a sweep over many PRs' lines (typos, a rename) is not a repair of each of them."""


class Blame(Protocol):
    """Who last changed given lines: commit sha -> number of those lines."""

    def blame(self, commit: str, path: str, ranges: tuple[LineRange, ...]) -> dict[str, int]: ...


@dataclass(frozen=True)
class AttachResult:
    number: int
    links: tuple[Link, ...] = ()
    chain: Chain | None = None
    grew: bool = False
    """The PR extended an existing chain or forked a new one of length two or more."""
    became_eligible: bool = False
    already_mined: bool = False


@dataclass
class _Candidates:
    best: dict[tuple[int, LinkKind], Link] = field(default_factory=dict)

    def add(self, link: Link) -> None:
        key = (link.earlier, link.kind)
        if key not in self.best or self.best[key].strength < link.strength:
            self.best[key] = link


def is_test_path(path: str) -> bool:
    lowered = "/" + path.lower()
    name = lowered.rsplit("/", 1)[-1]
    return (any(f"/{part}" in lowered for part in TEST_PATH_PARTS)
            or name.startswith("test_") or name.endswith(("_test.py", "_spec.rb", ".test.js",
                                                          ".test.ts", "_test.go", "tests.py")))


def is_doc_path(path: str) -> bool:
    """Prose, not behaviour: a fix there (a typo) does not repair an earlier PR's work."""
    lowered = "/" + path.lower()
    name = lowered.rsplit("/", 1)[-1]
    if name.startswith("requirements"):
        return False  # dependency pins are behaviour
    return (lowered.endswith(DOC_SUFFIXES) or name.split(".", 1)[0] in DOC_NAMES
            or any(f"/{p}" in lowered for p in DOC_PATH_PARTS))


def chain_id(repository: str, first: int, created_by: int) -> str:
    digest = hashlib.sha256(f"{repository}#{first}@{created_by}".encode()).hexdigest()[:10]
    return f"{first}-{created_by}-{digest}"


def attach_pull_request(session: Session, pr: PullRequest, blame: Blame | None,
                        config: RepoConfig | None = None) -> AttachResult:
    """Record ``pr`` and attach it to its strongest earlier neighbour; idempotent."""
    config = config or RepoConfig()
    existing = session.get(PullRequestRow, (pr.repository, pr.number))
    if existing is not None:
        return _already(session, existing)
    files = tuple(f for f in pr.files if not _ignored(f.path, config))
    row = _record(session, pr, files)
    candidates = _Candidates()
    _references(session, pr, candidates)
    _shared_issues(session, pr, row, candidates)
    if blame is not None and text.is_fix(pr.title, pr.labels, tuple(pr.issue_texts.values())):
        _fixes(session, pr, files, blame, candidates)
    _same_area(session, pr, files, candidates)
    links = tuple(sorted(candidates.best.values(), key=lambda k: (k.earlier, k.kind)))
    for link in links:
        session.add(LinkRow(repository=pr.repository, earlier=link.earlier, later=link.later,
                            kind=link.kind.value, evidence=link.evidence[:500],
                            strength=link.strength))
    session.flush()
    chain, grew, became = _extend(session, pr, links, config)
    return AttachResult(pr.number, links, chain, grew, became)


def _ignored(path: str, config: RepoConfig) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in config.paths_ignore)


def _record(session: Session, pr: PullRequest, files: tuple[FileChange, ...]) -> PullRequestRow:
    part = text.series(pr.title)
    row = PullRequestRow(
        repository=pr.repository, number=pr.number, title=pr.title, title_key=_title_key(pr.title),
        body=pr.body or "", author=pr.author, labels=list(pr.labels),
        base_commit=pr.base_commit, merge_commit=pr.merge_commit, merged_at=pr.merged_at,
        commits=[{"sha": c.sha, "message": c.message} for c in pr.commits],
        files=[_file_json(f) for f in pr.files],
        linked_issues=list(pr.linked_issues),
        issue_texts={str(k): v for k, v in pr.issue_texts.items()},
        touches_tests=any(is_test_path(f.path) for f in pr.files),
        series_key=part[0] if part else None, series_part=part[1] if part else None)
    session.add(row)
    shas = {c.sha for c in pr.commits} | {pr.merge_commit}
    for sha in shas - {""}:
        session.merge(CommitRow(repository=pr.repository, sha=sha, number=pr.number))
    for path in {f.path for f in files if not is_test_path(f.path)}:
        session.add(FileTouchRow(repository=pr.repository, path=path[:1024], number=pr.number,
                                 merged_at=pr.merged_at))
    return row


def _file_json(change: FileChange) -> dict[str, object]:
    return {"path": change.path, "status": change.status, "old_path": change.old_path,
            "binary": change.binary, "additions": change.additions,
            "deletions": change.deletions}


def _title_key(title: str) -> str:
    return " ".join(title.lower().split())[:255]


def _pr_text(pr: PullRequest) -> str:
    return "\n".join([pr.title, pr.body or "", *(c.message for c in pr.commits)])


def referenced_numbers(pr: PullRequest) -> list[int]:
    """Numbers ``pr`` mentions in its title, body or commits (PRs or issues), lowest first,
    without the issues GitHub says it closes."""
    numbers = {m.number for m in text.mentions(_pr_text(pr), pr.repository)}
    return sorted(numbers - set(pr.linked_issues) - {pr.number})


def _earlier_prs(session: Session, pr: PullRequest,
                 numbers: set[int]) -> dict[int, datetime | None]:
    """Which of ``numbers`` are mined PRs merged before ``pr``: number -> merged_at.

    Only the two columns are read (no row objects, no JSON), so the cost stays small however
    many candidates a PR has.
    """
    if not numbers:
        return {}
    rows = session.execute(select(PullRequestRow.number, PullRequestRow.merged_at).where(
        PullRequestRow.repository == pr.repository, PullRequestRow.number.in_(numbers),
        PullRequestRow.ignored.is_(False)))
    return {number: merged for number, merged in rows
            if number != pr.number and _merged_before(merged, pr)}


def _before(row: PullRequestRow, pr: PullRequest) -> bool:
    return _merged_before(row.merged_at, pr)


def _merged_before(merged_at: datetime | None, pr: PullRequest) -> bool:
    if merged_at is None or pr.merged_at is None:
        return True
    return aware(merged_at) <= aware(pr.merged_at)


def aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; every one we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _references(session: Session, pr: PullRequest, out: _Candidates) -> None:
    body = _pr_text(pr)
    mentions = text.mentions(body, pr.repository)
    known = _earlier_prs(session, pr, {m.number for m in mentions})
    follow_up = text.is_follow_up(body)
    for mention in mentions:
        if mention.number in known:
            strength = 1.0 if follow_up else 0.9
            out.add(Link(mention.number, pr.number, LinkKind.REFERENCES, mention.snippet, strength))
    part = text.series(pr.title)
    if part and part[1] > 1:
        row = session.scalar(select(PullRequestRow).where(
            PullRequestRow.repository == pr.repository, PullRequestRow.series_key == part[0],
            PullRequestRow.series_part == part[1] - 1, PullRequestRow.ignored.is_(False)))
        if row is not None and row.number != pr.number and _before(row, pr):
            out.add(Link(row.number, pr.number, LinkKind.REFERENCES,
                         f"part {part[1]} follows part {part[1] - 1}: {row.title}", 1.0))
    reverted = text.reverted_title(pr.title)
    if reverted:
        row = session.scalar(select(PullRequestRow).where(
            PullRequestRow.repository == pr.repository,
            PullRequestRow.title_key == _title_key(reverted)))
        if row is not None and row.number != pr.number and _before(row, pr):
            out.add(Link(row.number, pr.number, LinkKind.REFERENCES, pr.title, 1.0))
    for sha in text.reverted_commits(body):
        hit = session.scalar(select(CommitRow).where(CommitRow.repository == pr.repository,
                                                     CommitRow.sha.startswith(sha)))
        if hit is not None and hit.number != pr.number:
            out.add(Link(hit.number, pr.number, LinkKind.REFERENCES,
                         f"reverts commit {sha[:12]}", 1.0))


def _shared_issues(session: Session, pr: PullRequest, row: PullRequestRow,
                   out: _Candidates) -> None:
    mentions = text.mentions(_pr_text(pr), pr.repository)
    prs = _earlier_prs(session, pr, {m.number for m in mentions})
    issues = {m.number: m.closing for m in mentions if m.number not in prs}
    for number in pr.linked_issues:
        issues[number] = True
    issues.pop(pr.number, None)
    # A number that is a PR (even one mined later) is not an issue.
    pr_numbers = set(session.scalars(select(PullRequestRow.number).where(
        PullRequestRow.repository == pr.repository, PullRequestRow.number.in_(list(issues)))))
    issues = {n: c for n, c in issues.items() if n not in pr_numbers}
    row.linked_issues = sorted(issues)
    if not issues:
        return
    others = session.scalars(select(IssueRefRow).where(
        IssueRefRow.repository == pr.repository, IssueRefRow.issue.in_(list(issues))))
    candidates: list[IssueRefRow] = list(others)
    known = _earlier_prs(session, pr, {ref.number for ref in candidates})
    for ref in candidates:
        if ref.number not in known:
            continue
        both_close = ref.closing and issues[ref.issue]
        words = "both close" if both_close else "both reference"
        out.add(Link(ref.number, pr.number, LinkKind.SHARES_ISSUE, f"{words} #{ref.issue}",
                     0.8 if both_close else 0.6))
    for number, closing in issues.items():
        session.add(IssueRefRow(repository=pr.repository, issue=number, number=pr.number,
                                closing=closing))


def _fixes(session: Session, pr: PullRequest, files: tuple[FileChange, ...], blame: Blame,
           out: _Candidates) -> None:
    lines_by_commit: Counter[str] = Counter()
    paths_by_commit: dict[str, set[str]] = defaultdict(set)
    for change in files:
        if change.binary or change.status == "added" or not change.old_ranges \
                or is_doc_path(change.old_path or change.path):
            continue
        path = change.old_path or change.path
        for sha, count in blame.blame(pr.base_commit, path, change.old_ranges).items():
            lines_by_commit[sha] += count
            paths_by_commit[sha].add(path)
    if not lines_by_commit:
        return
    owners = {r.sha: r.number for r in session.scalars(select(CommitRow).where(
        CommitRow.repository == pr.repository, CommitRow.sha.in_(list(lines_by_commit))))}
    lines_by_pr: Counter[int] = Counter()
    paths_by_pr: dict[int, set[str]] = defaultdict(set)
    for sha, count in lines_by_commit.items():
        if sha in owners and owners[sha] != pr.number:
            lines_by_pr[owners[sha]] += count
            paths_by_pr[owners[sha]] |= paths_by_commit[sha]
    known = _earlier_prs(session, pr, set(lines_by_pr))
    blamed = {n: c for n, c in lines_by_pr.items() if n in known}
    total = sum(blamed.values())
    for number, count in blamed.items():
        if count < FIX_SHARE * total:
            continue
        where = ", ".join(sorted(paths_by_pr[number])[:3])
        noun = "line" if count == 1 else "lines"
        out.add(Link(number, pr.number, LinkKind.FIXES,
                     f"fix changes {count} {noun} of #{number} in {where} (git blame)",
                     min(0.95, 0.85 + count / 200)))


def _same_area(session: Session, pr: PullRequest, files: tuple[FileChange, ...],
               out: _Candidates) -> None:
    mine = {f.path for f in files if not is_test_path(f.path)}
    if not mine or pr.merged_at is None:
        return
    shared: Counter[int] = Counter()
    for path in sorted(mine)[:SAME_AREA_MAX_FILES]:
        # The latest touches of each file only: the cost stays flat as history grows.
        recent = session.scalars(select(FileTouchRow.number).where(
            FileTouchRow.repository == pr.repository, FileTouchRow.path == path,
            FileTouchRow.merged_at >= pr.merged_at - SAME_AREA_WINDOW)
            .order_by(FileTouchRow.merged_at.desc()).limit(SAME_AREA_RECENT))
        shared.update(n for n in recent if n != pr.number)
    known = _earlier_prs(session, pr, set(shared))
    for number, common in shared.items():
        merged_at = known.get(number)
        if merged_at is None:
            continue
        if aware(pr.merged_at) - aware(merged_at) > SAME_AREA_WINDOW:
            continue
        overlap = common / len(mine)
        if overlap >= SAME_AREA_OVERLAP:
            out.add(Link(number, pr.number, LinkKind.SAME_AREA,
                         f"{common} of {len(mine)} changed files also changed by #{number}",
                         round(0.1 + 0.2 * overlap, 3)))


def choose_parent(links: tuple[Link, ...]) -> Link | None:
    """The strongest earlier neighbour; `same_area` only breaks ties.

    Overlapping files alone say little about a shared goal, so a PR linked to nothing but the
    area it touches starts a chain of its own. Between equally strong links, the PR that also
    touched the same files wins, then the most recent one.
    """
    area = {k.earlier for k in links if k.kind is LinkKind.SAME_AREA}
    strong = [k for k in links if k.kind is not LinkKind.SAME_AREA]
    return max(strong, key=lambda k: (k.strength, k.earlier in area, k.earlier), default=None)


def _extend(session: Session, pr: PullRequest, links: tuple[Link, ...],
            config: RepoConfig) -> tuple[Chain, bool, bool]:
    parent = choose_parent(links)
    if parent is None:
        row = ChainRow(id=chain_id(pr.repository, pr.number, pr.number),
                       repository=pr.repository, prs=[pr.number], kinds=[])
        return _save(session, row, pr, config, was_eligible=False, grew=False)
    tail = session.scalars(select(ChainRow).join(MemberRow, MemberRow.chain_id == ChainRow.id)
                           .where(MemberRow.repository == pr.repository,
                                  MemberRow.number == parent.earlier)
                           .order_by(ChainRow.id)).all()
    for chain in tail:
        if chain.prs[-1] == parent.earlier and len(chain.prs) < config.max_chain_length:
            was = chain.eligible
            chain.prs = [*chain.prs, pr.number]
            chain.kinds = [*chain.kinds, parent.kind.value]
            chain.version += 1
            return _save(session, chain, pr, config, was_eligible=was, grew=True)
    # The neighbour already has a successor (or its chain is full): a new path forks here.
    base = tail[0] if tail else None
    prefix = base.prs[: base.prs.index(parent.earlier) + 1] if base else [parent.earlier]
    kinds = base.kinds[: len(prefix) - 1] if base else []
    keep = config.max_chain_length - 1
    if keep < 1:
        row = ChainRow(id=chain_id(pr.repository, pr.number, pr.number),
                       repository=pr.repository, prs=[pr.number], kinds=[])
        return _save(session, row, pr, config, was_eligible=False, grew=False)
    if len(prefix) > keep:
        drop = len(prefix) - keep
        prefix, kinds = prefix[drop:], kinds[drop:]
    row = ChainRow(id=chain_id(pr.repository, prefix[0], pr.number), repository=pr.repository,
                   prs=[*prefix, pr.number], kinds=[*kinds, parent.kind.value])
    return _save(session, row, pr, config, was_eligible=False, grew=True)


def _save(session: Session, row: ChainRow, pr: PullRequest, config: RepoConfig,
          was_eligible: bool, grew: bool) -> tuple[Chain, bool, bool]:
    touches = set(session.scalars(select(PullRequestRow.number).where(
        PullRequestRow.repository == pr.repository, PullRequestRow.number.in_(row.prs),
        PullRequestRow.touches_tests.is_(True))))
    row.eligible = len(row.prs) >= config.min_chain_length and bool(touches)
    if session.get(ChainRow, row.id) is None:
        session.add(row)
    session.flush()
    existing = {m.position for m in session.scalars(
        select(MemberRow).where(MemberRow.chain_id == row.id))}
    for position, number in enumerate(row.prs):
        if position not in existing:
            session.add(MemberRow(chain_id=row.id, position=position,
                                  repository=row.repository, number=number))
    chain = to_chain(row)
    return chain, grew, row.eligible and not was_eligible


def to_chain(row: ChainRow) -> Chain:
    return Chain(id=row.id, repository=row.repository, prs=tuple(row.prs),
                 kinds=tuple(LinkKind(k) for k in row.kinds), eligible=row.eligible)


def _already(session: Session, row: PullRequestRow) -> AttachResult:
    links = tuple(Link(r.earlier, r.later, LinkKind(r.kind), r.evidence, r.strength)
                  for r in session.scalars(select(LinkRow).where(
                      LinkRow.repository == row.repository, LinkRow.later == row.number)))
    member = session.scalars(select(ChainRow).join(MemberRow, MemberRow.chain_id == ChainRow.id)
                             .where(MemberRow.repository == row.repository,
                                    MemberRow.number == row.number)).all()
    ending_here = [c for c in member if c.prs[-1] == row.number] or member
    chain = to_chain(ending_here[0]) if ending_here else None
    return AttachResult(row.number, links, chain, already_mined=True)
