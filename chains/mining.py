"""Attaching one merged PR to the graph: its links, then the chain it extends or starts.

Work per PR is proportional to that PR: every lookup goes through an index (PR numbers it
mentions, issues it names, commits blame points at, files it touches), never a history scan.
The rules ask a `chains.graph.Graph`: the database for one PR at a time (the live path), or
memory for a whole history (`mine_history`, the offline path), with the same answers.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from difflib import SequenceMatcher
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chains import diff, substance, text
from chains.collector import fewer_collections
from chains.config import RepoConfig
from chains.graph import ChainState, Graph, MemoryGraph, SqlGraph, aware, title_key
from chains.model import (
    UNTRACED,
    Chain,
    FileChange,
    LineRange,
    Link,
    LinkKind,
    PullRequest,
    verifiable_needed,
)
from chains.paths import is_doc_path, is_test_path
from chains.store import ChainRow, LinkRow, MemberRow, PullRequestRow

SAME_AREA_WINDOW = timedelta(days=30)
SAME_AREA_OVERLAP = 0.5
SAME_AREA_MAX_FILES = 200
TRACKER_PRS = 3
"""An issue this many earlier PRs name is an umbrella (a tracker, an audit or a review whose
findings are fixed one PR each): naming it links a PR to no one."""
FIX_SHARE = 0.25
"""A fix links to an earlier PR only if that PR wrote at least this share of the lines the fix
changes: a sweep over many PRs' lines (typos, a rename) is not a repair of each of them."""
LONE_LINE_SHARE = 0.5
"""A fix's one line of an earlier PR links to it only when that is at least this share of
the lines the fix changes (one line among others' is met on the way)."""

OLD_FIX = timedelta(days=365)
"""A fix links to a PR merged longer than this before it only when that PR wrote every code
line the fix changes: of judged links, those older than a year with a shared blame were
mostly lines the fix met on its way to an older or newer bug."""
STALE_LONE_LINE = timedelta(days=2 * 365)
"""A fix links to a PR merged longer than this before it only when it changes more than one
line of that PR: one line that lived two years among others' changes is thin evidence (of
judged links, such single old lines were two thirds correct against four fifths of all),
and a chain that spans years seldom runs in one environment."""

_RESULT = re.compile(r"^(?:return|yield|await)\s+")
"""What a function body line says before the expression it hands back."""

RESTORE_MIN_LENGTH = 12
"""Put-back lines shorter than this ("return x") are too common to say who removed them."""
RESTORE_PROBES = 4
"""At most this many put-back lines are looked up per PR."""
COSMETIC_ROUNDS = 3
"""How many times blame looks further back through cosmetic commits of one file."""
IGNORED_ROUNDS = 4
"""How many times blame looks further back through commits of ignored PRs, first."""
PASSING_ROUNDS = 2
"""How many commits in a row blame looks through for one line edited in passing."""
PASSING_LIKE = 0.5
"""How alike (token ratio) a line a commit removed must be to a line it wrote to count as
the same line's earlier version."""
LAYOUT_SHARE = 0.75
"""A PR is a re-layout (a formatter's run) when at least this share of the code files it
changes keep their syntax tree."""


class Blame(Protocol):
    """Who last changed given lines, and what a file held: the repository as git sees it."""

    def lines(self, commit: str, path: str, ranges: tuple[LineRange, ...],
              ignore: frozenset[str] = frozenset(),
              follow: bool = True) -> dict[int, tuple[str, str]]:
        """Line number -> (sha of the commit that last changed it, the line), looking
        through ``ignore``d commits (`UNTRACED` for a line blame could not trace past
        them); ``follow``: through lines moved or copied from elsewhere to the commit that
        wrote them there."""
        ...

    def changed_lines(self, sha: str, where: Callable[[str], bool] | None = None
                      ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(removed, added) lines of a commit, in every file or those ``where`` accepts."""
        ...

    def show(self, commit: str, path: str) -> str | None:
        """The text of ``path`` at ``commit``; None when absent or binary."""
        ...

    def message(self, sha: str) -> str:
        """The commit's message ("" when it is not there)."""
        ...

    def removed_by(self, commit: str, path: str, line: str) -> str | None:
        """The latest commit up to ``commit`` that removed ``line`` from ``path``."""
        ...


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


def chain_id(repository: str, first: int, created_by: int) -> str:
    digest = hashlib.sha256(f"{repository}#{first}@{created_by}".encode()).hexdigest()[:10]
    return f"{first}-{created_by}-{digest}"


def attach_pull_request(session: Session, pr: PullRequest, blame: Blame | None,
                        config: RepoConfig | None = None) -> AttachResult:
    """Record ``pr`` and attach it to its strongest earlier neighbour; idempotent."""
    existing = session.get(PullRequestRow, (pr.repository, pr.number))
    if existing is not None:
        return _already(session, existing)
    return attach(SqlGraph(session, pr.repository), pr, blame, config or RepoConfig())


def attach(graph: Graph, pr: PullRequest, blame: Blame | None,
           config: RepoConfig) -> AttachResult:
    """Link a PR not mined yet to the graph and grow its chain."""
    files = tuple(f for f in pr.files if not _ignored(f.path, config))
    tests = {f.path for f in pr.files if is_test_path(f.path)}
    code = {f.path for f in files if f.path not in tests}
    body = _pr_text(pr)
    found = text.mentions(body, pr.repository)
    named = _earlier(graph, pr, {m.number for m in found})
    # A release PR names the issues its changelog lists: it shares none of them.
    issues = {} if text.is_release(pr.title) else _issues(graph, pr, found, named)
    layout = blame is not None and (text.is_sweep(pr.title) or _layout_only(pr, files, blame))
    machine = text.is_bot(pr.author)
    # Only a PR that changes tests and something beside them makes a stage its tests can
    # verify: a rollout drops a PR that changes tests alone (a test restored, made stable).
    graph.record(pr, issues, {path[:1024] for path in code},
                 touches_tests=bool(tests) and len(tests) < len(pr.files),
                 ignored=layout or machine)
    candidates = _Candidates()
    if machine:  # a bot's PR: its text quotes other projects' numbers, its change is no one's
        return _attached(graph, pr, (), config)
    _references(graph, pr, body, found, named, candidates)
    _shared_issues(graph, pr, issues, candidates)
    if blame is not None and not layout and not text.is_revert(pr.title) and \
            text.is_fix(pr.title, pr.labels, tuple(pr.issue_texts.values())) and \
            _changes_code(pr, files, blame):
        _fixes(graph, pr, files, blame, candidates)
    if blame is not None and not layout and (
            text.is_restore(pr.title) or (text.is_fix(pr.title, pr.labels) and
                                          not any(_blamable(f) for f in files))):
        _restores(graph, pr, files, blame, candidates)
    _same_area(graph, pr, code, candidates)
    links = tuple(sorted(candidates.best.values(), key=lambda k: (k.earlier, k.kind)))
    return _attached(graph, pr, links, config)


def _attached(graph: Graph, pr: PullRequest, links: tuple[Link, ...],
              config: RepoConfig) -> AttachResult:
    graph.add_links(links)
    chain, grew, became = _extend(graph, pr, links, config)
    return AttachResult(pr.number, links, chain, grew, became)


BATCH = 2000
"""PRs the offline path attaches in memory before it writes them in one transaction."""


class GraphChanged(RuntimeError):
    """The database took rows an offline run had not seen: someone else mined meanwhile."""


def mine_history(open_session: Callable[[], AbstractContextManager[Session]],
                 repository: str, prs: Iterable[PullRequest], blame: Blame | None,
                 config: RepoConfig, batch: int = BATCH,
                 progress: Callable[[int], None] | None = None) -> int:
    """Mine a whole history, oldest first, the way `attach_pull_request` would one by one.

    The graph is read into memory once, each PR is attached there, and every ``batch`` PRs
    what grew is written in one transaction: each PR is stored whole or not at all, and a run
    stopped half-way leaves whole batches behind that a re-run skips. ``progress`` hears of
    every PR. Returns how many PRs were newly mined.
    """
    with fewer_collections():
        with open_session() as session:
            graph = MemoryGraph.load(session, repository)
        mined = waiting = 0
        for pr in prs:
            if not graph.is_mined(pr.number):
                attach(graph, pr, blame, config)
                waiting += 1
            if progress is not None:
                progress(1)
            if waiting >= batch:
                mined += _write(open_session, graph)
                waiting = 0
        return mined + _write(open_session, graph)


def _write(open_session: Callable[[], AbstractContextManager[Session]],
           graph: MemoryGraph) -> int:
    try:
        with open_session() as session:
            return graph.write(session)
    except IntegrityError as exc:
        raise GraphChanged(f"{graph.repository} was mined by someone else during this run; "
                           "nothing of this batch was stored, run again to mine the rest") \
            from exc


def _ignored(path: str, config: RepoConfig) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in config.paths_ignore)


def _pr_text(pr: PullRequest) -> str:
    """The PR's own words: title, body and the messages of its commits, except merges inside
    its branch ("Merge pull request #2 from user/master" numbers a fork's PR, "Merge branch
    'main'" names nothing of its own)."""
    own = [c.message for c in pr.commits if not text.is_merge_message(c.message)]
    return "\n".join([pr.title, pr.body or "", *own])


def referenced_numbers(pr: PullRequest) -> list[int]:
    """Numbers ``pr`` mentions in its title, body or commits (PRs or issues), lowest first,
    without the issues GitHub says it closes."""
    numbers = {m.number for m in text.mentions(_pr_text(pr), pr.repository)}
    return sorted(numbers - set(pr.linked_issues) - {pr.number})


def _earlier(graph: Graph, pr: PullRequest, numbers: set[int]) -> dict[int, datetime | None]:
    """Which of ``numbers`` are mined PRs merged before ``pr``: number -> merged_at."""
    numbers.discard(pr.number)
    found = graph.merged_at(numbers)
    if pr.merged_at is None:
        return found
    at = aware(pr.merged_at)
    return {number: merged for number, merged in found.items()
            if merged is None or aware(merged) <= at}


def _merged_before(merged_at: datetime | None, pr: PullRequest) -> bool:
    if merged_at is None or pr.merged_at is None:
        return True
    return aware(merged_at) <= aware(pr.merged_at)


def _issues(graph: Graph, pr: PullRequest, found: list[text.Mention],
            named: dict[int, datetime | None]) -> dict[int, bool]:
    """The issues ``pr`` names or closes: issue number -> closing."""
    issues = {m.number: m.closing for m in found if m.number not in named}
    for number in pr.linked_issues:
        issues[number] = True
    issues.pop(pr.number, None)
    # A number that is a PR (even one mined later) is not an issue.
    prs = graph.mined_among(issues)
    return {n: c for n, c in sorted(issues.items()) if n not in prs}


def _references(graph: Graph, pr: PullRequest, body: str, found: list[text.Mention],
                named: dict[int, datetime | None], out: _Candidates) -> None:
    follow_up = text.is_follow_up(body)
    for mention in found:
        # "Closes #N" closes an issue; a merged PR cannot be closed, so N is an issue the
        # history's PR numbers do not know (an imported project's PR numbered the same).
        if mention.number in named and not mention.closing:
            strength = 1.0 if follow_up else 0.9
            out.add(Link(mention.number, pr.number, LinkKind.REFERENCES, mention.snippet, strength))
    part = text.series(pr.title)
    if part and part[1] > 1:
        for number, title, merged in graph.series_parts(part[0], part[1] - 1):
            if number != pr.number and _merged_before(merged, pr):
                out.add(Link(number, pr.number, LinkKind.REFERENCES,
                             f"part {part[1]} follows part {part[1] - 1}: {title}", 1.0))
                break
    reverted = text.reverted_title(pr.title)
    if reverted:
        for number, merged in graph.titled(title_key(reverted)):
            if number != pr.number and _merged_before(merged, pr):
                out.add(Link(number, pr.number, LinkKind.REFERENCES, pr.title, 1.0))
                break
    for sha in text.reverted_commits(body):
        owner = graph.commit_with_prefix(sha.lower())
        if owner is not None and owner != pr.number:
            out.add(Link(owner, pr.number, LinkKind.REFERENCES, f"reverts commit {sha[:12]}",
                         1.0))


def _shared_issues(graph: Graph, pr: PullRequest, issues: dict[int, bool],
                   out: _Candidates) -> None:
    """Links to the earlier PRs that name an issue ``pr`` names, unless the issue is an
    umbrella (TRACKER_PRS earlier PRs name it)."""
    refs = [ref for ref in graph.issue_refs(issues) if ref[1] != pr.number]
    known = _earlier(graph, pr, {number for _, number, _ in refs})
    naming: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    for issue, number, closing in refs:
        if number in known:
            naming[issue].append((number, closing))
    for issue, earlier in naming.items():
        if len(earlier) >= TRACKER_PRS:
            continue
        for number, closing in earlier:
            both_close = closing and issues[issue]
            words = "both close" if both_close else "both reference"
            out.add(Link(number, pr.number, LinkKind.SHARES_ISSUE, f"{words} #{issue}",
                         0.8 if both_close else 0.6))


def _blamable(change: FileChange) -> bool:
    """A file whose earlier lines a fix can be credited through."""
    return not (change.binary or change.status == "added" or not change.old_ranges
                or _not_code(change.old_path or change.path))


def _not_code(path: str) -> bool:
    """Prose, tests, or files no fix is credited through (configuration, data, lock files,
    vendored and generated code)."""
    return is_doc_path(path) or is_test_path(path) or substance.never_blamed(path)


def _changes_code(pr: PullRequest, files: tuple[FileChange, ...], blame: Blame) -> bool:
    """Whether the PR changes behaviour outside its tests and docs (a sweep of comments,
    docstrings or message text fixes no one)."""
    for change in files:
        path = change.old_path or change.path
        if change.binary or is_doc_path(path) or is_test_path(change.path) \
                or substance.never_blamed(change.path):
            continue
        old = None if change.status == "added" else blame.show(pr.base_commit, path)
        new = None if change.status == "removed" else blame.show(pr.merge_commit, change.path)
        if substance.changes_code(old, new, change.path):
            return True
    return False


def _layout_only(pr: PullRequest, files: tuple[FileChange, ...], blame: Blame) -> bool:
    """A PR that re-lays out Python code (a formatter's run): of the code files it changes,
    at least LAYOUT_SHARE keep the same syntax tree (a formatter's run often carries a few
    hand edits along)."""
    changed = [f for f in files if f.status == "modified" and f.path.endswith(".py")
               and not substance.never_blamed(f.path)]
    allowed = len(changed) - LAYOUT_SHARE * len(changed)  # files that may change code
    differing = 0
    for change in changed:
        if not substance.format_only(blame.show(pr.base_commit, change.path),
                                     blame.show(pr.merge_commit, change.path), change.path):
            differing += 1
            if differing > allowed:  # the share can no longer be reached
                return False
    return bool(changed)


def _substantive(change: FileChange, text: str | None,
                 carried: Counter[str] | None = None,
                 wrapped: frozenset[int] = frozenset()) -> tuple[LineRange, ...]:
    """The lines of ``change.old_ranges`` that are code in the base version ``text``, less
    those the PR only carried elsewhere: a line whose code (comments and spacing aside)
    the PR adds again, moved, re-indented or re-commented, is not one it changed, unless it
    is one of the ``wrapped`` lines (put back in place inside new code)."""
    if text is None:
        return ()
    keep = substance.substantive_lines(text, change.old_path or change.path)
    lines = text.split("\n")
    spans: list[tuple[int, int]] = []
    for span in change.old_ranges:
        for line in range(span.start, span.end + 1):
            if keep is not None and line not in keep:
                continue
            code = substance.code_of(lines[line - 1]) if line <= len(lines) else ""
            if carried is not None and code and carried[code] > 0:
                carried[code] -= 1
                if line not in wrapped:
                    continue
            if spans and spans[-1][1] == line - 1:
                spans[-1] = (spans[-1][0], line)
            else:
                spans.append((line, line))
    return tuple(LineRange(a, b) for a, b in spans)


def _wrapped(change: FileChange, old: str | None, new: str | None) -> frozenset[int]:
    """Base lines the PR put back in their own hunk, indented deeper, among new code of its
    own (`x()` becoming `try: x() except E: ...`): the fix works on that line, so it is one
    the PR changed, not one it carried elsewhere."""
    if old is None or new is None:
        return frozenset()
    old_lines, new_lines = old.split("\n"), new.split("\n")
    found: set[int] = set()
    for hunk in change.hunks:
        if hunk.old is None or hunk.new is None:
            continue
        removed = {n: old_lines[n - 1] for n in range(hunk.old.start, hunk.old.end + 1)
                   if n <= len(old_lines)}
        added = [new_lines[n - 1] for n in range(hunk.new.start, hunk.new.end + 1)
                 if n <= len(new_lines)]
        kept = {substance.code_of(line) for line in removed.values()}
        if not any(code and code not in kept for code in map(substance.code_of, added)):
            continue  # nothing new around it: a re-indent or a move
        for number, line in removed.items():
            code = substance.code_of(line)
            if code and any(substance.code_of(a) == code and _indent(a) > _indent(line)
                            for a in added):
                found.add(number)
    return frozenset(found)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _added_code(pr: PullRequest, files: tuple[FileChange, ...], blame: Blame) -> Counter[str]:
    """The code (comments and spacing aside) of every line the PR adds, counted."""
    found: Counter[str] = Counter()
    for change in files:
        if not change.binary and change.status != "removed":
            _, added = _added_lines(pr, change, blame)
            found.update(code for _, line in added if (code := substance.code_of(line)))
    return found


def _added_lines(pr: PullRequest, change: FileChange,
                 blame: Blame) -> tuple[str | None, list[tuple[int, str]]]:
    """The merged text of ``change`` (None when unreadable) and the lines the PR added to it,
    with their numbers."""
    text = blame.show(pr.merge_commit, change.path) if change.new_ranges else None
    if text is None:
        return None, []
    lines = text.split("\n")
    return text, [(n, lines[n - 1]) for r in change.new_ranges for n in range(r.start, r.end + 1)
                  if n <= len(lines)]


def _blame_through(blame: Blame, commit: str, path: str, ranges: tuple[LineRange, ...],
                   ignored: Callable[[set[str]], frozenset[str]],
                   hints: bool = True,
                   edits: Mapping[int, list[str] | None] | None = None) -> dict[str, int]:
    """Blame that looks through what only re-laid out, renamed, moved or restored code:
    reverts (they put back what others wrote) and commits whose change to ``path`` was
    cosmetic (the same tree once names and docstrings are blanked, and type hints too unless
    ``hints`` is false: when the fix is itself a fix of type hints),
    then line by line a commit that wrote a line in a shape it also removed (a block moved
    and renamed into a new function): those lines go back to whoever wrote them before.
    ``ignored`` says which commits belong to ignored PRs: asked only of the commits blame
    names, so the cost follows the lines, not the history. With ``edits`` (what the fix made
    of each line, as tokens), a line goes back past a commit that only edited it in passing:
    one that did not write the tokens the fix changes."""
    looked: set[str] = set()
    carriers: set[str] = set()
    lines = blame.lines(commit, path, ranges)
    for _ in range(IGNORED_ROUNDS):
        skip = ignored({sha for sha, _ in lines.values()} - looked)
        if not skip:
            break
        looked |= skip
        lines = blame.lines(commit, path, ranges, frozenset(looked))
    for _ in range(COSMETIC_ROUNDS):
        shas = {sha for sha, _ in lines.values()} - looked - {UNTRACED}
        cosmetic = ignored(shas) | {sha for sha in shas if text.is_revert(blame.message(sha))
                    or substance.cosmetic(blame.show(f"{sha}^", path), blame.show(sha, path),
                                          path, hints)}
        if cosmetic:
            looked |= cosmetic
            lines = blame.lines(commit, path, ranges, frozenset(looked))
            continue
        moved = {n: sha for n, (sha, line) in lines.items()
                 if sha not in carriers and sha != UNTRACED and _carried(blame, sha, line)}
        if not moved:
            break
        carriers |= set(moved.values())
        looked |= carriers
        lines.update(blame.lines(commit, path, diff.ranges(sorted(moved)), frozenset(looked)))
    lines.update(_copied(blame, commit, path, ranges, frozenset(looked), lines))
    if edits:
        for number, found in _past_passing(blame, commit, path, lines, edits,
                                           frozenset(looked)).items():
            if found is None:
                del lines[number]
            else:
                lines[number] = found
    # A line blame cannot take past its carrier (moved to another file) credits no one.
    return dict(Counter(sha for sha, _ in lines.values() if sha not in carriers))


def _replacements(change: FileChange, old: str | None, new: str | None
                  ) -> dict[int, list[str] | None]:
    """What the change made of each base line it replaced, as tokens: the most alike line
    it added in the same hunk, or None when it added none alike (the line went)."""
    if old is None:
        return {}
    old_lines, new_lines = old.split("\n"), (new or "").split("\n")
    made: dict[int, list[str] | None] = {}
    for hunk in change.hunks:
        if hunk.old is None:
            continue
        added = [substance.tokens(new_lines[n - 1]) for n in
                 (range(hunk.new.start, hunk.new.end + 1) if hunk.new else ())
                 if n <= len(new_lines)]
        for number in range(hunk.old.start, hunk.old.end + 1):
            if number <= len(old_lines):
                made[number] = _most_alike(substance.tokens(old_lines[number - 1]), added)
    return made


def _most_alike(line: list[str], candidates: Iterable[list[str]]) -> list[str] | None:
    """The candidate most alike ``line`` if at least PASSING_LIKE alike, else None."""
    matcher = SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(line)
    best, found = PASSING_LIKE, None
    for candidate in candidates:
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() >= best and matcher.quick_ratio() >= best \
                and (ratio := matcher.ratio()) >= best:
            best, found = ratio, candidate
    return found


def _in_passing(removed: list[list[str]], line: list[str], fixed: list[str] | None) -> bool:
    """Whether the commit that removed ``removed`` (code lines, as tokens) edited ``line``
    only in passing for a fix that made it ``fixed``: it removed a line alike that already
    held every token the fix changes (a rename beside the bug, an argument added to the
    buggy call), and the fix puts back nothing the commit took out. A line the fix deletes,
    only re-indents or only adds to is not told apart this way (what an insertion fixes is
    not in the line)."""
    if fixed is None:
        return False
    touched = substance.touched(line, fixed)
    if not touched:
        return False
    before = _most_alike(line, removed)
    return before is not None and substance.inherited(line, before, touched) \
        and not substance.put_back(line, before, fixed)


def _past_passing(blame: Blame, commit: str, path: str, lines: dict[int, tuple[str, str]],
                  edits: Mapping[int, list[str] | None], ignore: frozenset[str]
                  ) -> dict[int, tuple[str, str] | None]:
    """The lines whose last commit edited them in passing (see `_in_passing`), blamed past
    it. None: blame cannot go past it (the line came from another file), so it credits no
    one."""
    past: dict[int, tuple[str, str] | None] = {}
    skipped: dict[int, frozenset[str]] = {}
    removed: dict[str, list[list[str]]] = {}  # a commit's removed code lines, tokenized once
    current = {number: found for number, found in lines.items() if number in edits}
    for _ in range(PASSING_ROUNDS):
        passed: dict[frozenset[str], list[int]] = defaultdict(list)
        for number, (sha, line) in current.items():
            if sha == UNTRACED:
                continue
            if sha not in removed:
                code, _ = blame.changed_lines(sha, lambda path: not _not_code(path))
                removed[sha] = [substance.tokens(text) for text in code]
            if _in_passing(removed[sha], substance.tokens(line), edits[number]):
                passed[skipped.get(number, frozenset()) | {sha}].append(number)
        current = {}
        for passers, numbers in passed.items():
            again = blame.lines(commit, path, diff.ranges(sorted(numbers)), ignore | passers)
            for number in numbers:
                found = again.get(number)
                if found is None or found[0] in passers:
                    past[number] = None
                else:
                    past[number] = current[number] = found
                    skipped[number] = passers
    return past


def _copied(blame: Blame, commit: str, path: str, ranges: tuple[LineRange, ...],
            ignore: frozenset[str], lines: dict[int, tuple[str, str]]
            ) -> dict[int, tuple[str, str]]:
    """The lines blame followed to an origin they were copied from, credited to the commit
    that copied them: a commit that moved a line removed it where it was (the line stays its
    author's), one that copied it left the original in place and wrote the copy's use."""
    here = blame.lines(commit, path, ranges, ignore, follow=False)
    copies: dict[int, tuple[str, str]] = {}
    for number, (sha, line) in lines.items():
        placed = here.get(number)
        code = substance.code_of(line)
        if placed is None or placed[0] == sha or not code:
            continue
        removed, _ = blame.changed_lines(placed[0])
        if not any(substance.code_of(old) == code for old in removed):
            copies[number] = placed
    return copies


def _carried(blame: Blame, sha: str, line: str) -> bool:
    """Whether commit ``sha`` only carried ``line`` over: it removed at least as many lines
    of the line's shape (names blanked) as it added, so it renamed or moved them; or it
    removed a line holding the expression the line returns (`lambda m, f: x.y()` made into a
    function that does `return x.y()`)."""
    removed, added = blame.changed_lines(sha)
    wanted = substance.shape(line)
    if not wanted:
        return False
    if _removed_as_often(removed, added, lambda text: substance.shape(text) == wanted):
        return True
    code = substance.code_of(line)
    value = _RESULT.sub("", code)
    return value != code and len(value) >= RESTORE_MIN_LENGTH and _removed_as_often(
        removed, added, lambda text: value in substance.code_of(text))


def _removed_as_often(removed: tuple[str, ...], added: tuple[str, ...],
                      holds: Callable[[str], bool]) -> bool:
    """Whether a commit removed at least one line that ``holds``, and no fewer than it
    added: what it wrote of that kind it took from elsewhere."""
    gone = sum(1 for old in removed if holds(old))
    return gone > 0 and gone >= sum(1 for new in added if holds(new))


def _fixes(graph: Graph, pr: PullRequest, files: tuple[FileChange, ...], blame: Blame,
           out: _Candidates) -> None:
    """`fixes` links to the PRs that last wrote the code lines this fix changes.

    Only code counts: the lines blamed are those of the base version that are code (not
    blank, comments, docstrings or imports) in files that are not tests, docs, configuration,
    lock files, vendored or generated; blame ignores whitespace, follows moves and copies,
    and looks through format-only PRs and `.git-blame-ignore-revs`. An earlier PR is linked
    when it wrote at least a quarter of those lines that earlier PRs wrote (half, when it
    wrote only one; all of them, when it merged over a year before; more than one, when over
    two years before), and when more than blame says so (`_Corroboration`); the link's
    strength grows with its share and its line count.
    """
    lines_by_commit: Counter[str] = Counter()
    paths_by_commit: dict[str, set[str]] = defaultdict(set)
    changed = _changed_code(pr, files, blame)
    for change, base, ranges in changed:
        path = change.old_path or change.path
        # A fix of type hints is not looked through the PRs that wrote them.
        merged = blame.show(pr.merge_commit, change.path)
        hints = not substance.hints_only(base, merged, path)
        for sha, count in _blame_through(blame, pr.base_commit, path, ranges,
                                         graph.ignored_among, hints,
                                         _replacements(change, base, merged)).items():
            lines_by_commit[sha] += count
            paths_by_commit[sha].add(path)
    if not lines_by_commit:
        return
    owners = graph.commit_owners(lines_by_commit)
    lines_by_pr: Counter[int] = Counter()
    paths_by_pr: dict[int, set[str]] = defaultdict(set)
    shas_by_pr: dict[int, list[str]] = defaultdict(list)
    for sha, count in lines_by_commit.items():
        if sha in owners and owners[sha] != pr.number:
            lines_by_pr[owners[sha]] += count
            paths_by_pr[owners[sha]] |= paths_by_commit[sha]
            shas_by_pr[owners[sha]].append(sha)
    known = _earlier(graph, pr, set(lines_by_pr))
    blamed = {n: c for n, c in lines_by_pr.items() if n in known}
    # Lines of commits no PR owns (pushed straight to the branch) are someone's work too.
    total = sum(blamed.values()) + sum(c for sha, c in lines_by_commit.items() if sha not in owners)
    kept: dict[int, tuple[int, float, timedelta]] = {}
    for number, count in blamed.items():
        share = count / total
        age = _age(known[number], pr)
        if share < FIX_SHARE or (count == 1 and share < LONE_LINE_SHARE) \
                or (age > OLD_FIX and count < total) or (age > STALE_LONE_LINE and count == 1):
            continue
        kept[number] = (count, share, age)
    corroboration = _Corroboration(pr, files, blame, changed, graph.described(kept))
    for number, (count, share, age) in kept.items():
        why = corroboration.of(number, shas_by_pr[number], wrote_all=count == total)
        if why is None:
            continue
        where = ", ".join(sorted(paths_by_pr[number])[:3])
        noun = "line" if count == 1 else "lines"
        out.add(Link(number, pr.number, LinkKind.FIXES,
                     f"fix changes {count} code {noun} of #{number} ({share:.0%} of the code "
                     f"lines it changes) in {where} (git blame); {why}",
                     _strength(share, count, age)))


class _Corroboration:
    """Blame alone links too much (lines met in passing, lines another PR only edited): a
    blamed PR is a fix's only when the two PRs speak of a common topic, or when it wrote
    every line the fix changes and the fix works on a name it brought in."""

    def __init__(self, pr: PullRequest, files: tuple[FileChange, ...], blame: Blame,
                 changed: list[tuple[FileChange, str | None, tuple[LineRange, ...]]],
                 texts: dict[int, str]) -> None:
        self.pr, self.files, self.blame, self.changed, self.texts = pr, files, blame, changed, texts
        self.topic = text.topic_words(text.description(pr.title, pr.body))
        self._names: set[str] | None = None

    def of(self, number: int, shas: list[str], wrote_all: bool) -> str | None:
        """The evidence beyond blame that the fix is ``number``'s (None: there is none)."""
        common = sorted(self.topic & text.topic_words(self.texts.get(number, "")))
        if common:
            return f"both speak of {', '.join(common[:3])}"
        if not wrote_all:
            return None
        if self._names is None:
            self._names = _names_changed(self.pr, self.files, self.blame, self.changed)
        used = sorted(self._names & _names_brought(self.blame, shas))
        return f"it works on {', '.join(used[:3])}, which #{number} brought in" if used else None


def _names_changed(pr: PullRequest, files: tuple[FileChange, ...], blame: Blame,
                   changed: list[tuple[FileChange, str | None, tuple[LineRange, ...]]]
                   ) -> set[str]:
    """The names in the code lines a fix changed: the base's lines it replaced, and those
    it added."""
    replaced = [line for _, base, ranges in changed if base is not None
                for lines in (base.split("\n"),) for r in ranges
                for line in lines[r.start - 1:r.end]]
    return substance.names(replaced) | substance.names(list(_added_code(pr, files, blame)))


def _names_brought(blame: Blame, shas: list[str]) -> set[str]:
    """The names an earlier PR's commits (those blamed) brought into the code."""
    removed: list[str] = []
    added: list[str] = []
    for sha in shas:
        gone, new = blame.changed_lines(sha, where=lambda path: not _not_code(path))
        removed += gone
        added += new
    return substance.brought(removed, added)


def _age(merged_at: datetime | None, pr: PullRequest) -> timedelta:
    """How long before ``pr`` the earlier PR merged (zero when a date is unknown)."""
    if merged_at is None or pr.merged_at is None:
        return timedelta(0)
    return max(timedelta(0), aware(pr.merged_at) - aware(merged_at))


def _strength(share: float, count: int, age: timedelta) -> float:
    """A `fixes` link's strength: more of the fixed lines, more of them, and a more recent
    earlier PR make it stronger (a fix years later repairs what many hands have built on)."""
    recency = 0.1 * min(age / OLD_FIX, 2.0) / 2
    return round(min(0.95, 0.6 + 0.25 * share + min(count, 40) / 400 - recency), 3)


def _changed_code(pr: PullRequest, files: tuple[FileChange, ...], blame: Blame
                  ) -> list[tuple[FileChange, str | None, tuple[LineRange, ...]]]:
    """The base's code lines the PR changed, per blamable file (with the file's base text):
    those it did not carry elsewhere; or, when it carried every one, those it wrapped in new
    code in place (a fix that puts `try:` around a call works on that call). A file the PR
    only re-laid out (the same syntax tree: "Fix formatting" after a lint failure) has no
    line it changed."""
    blamable = [(change, base, merged) for change in files if _blamable(change)
                for base in (blame.show(pr.base_commit, change.old_path or change.path),)
                for merged in (blame.show(pr.merge_commit, change.path),)
                if not substance.format_only(base, merged, change.path)]
    added = _added_code(pr, files, blame)
    carried = Counter(added)  # a line carried from one file to another counts once
    found = [(change, base, ranges) for change, base, _ in blamable
             if (ranges := _substantive(change, base, carried))]
    if found or not blamable:
        return found
    carried = Counter(added)
    return [(change, base, ranges) for change, base, merged in blamable
            if (ranges := _substantive(change, base, carried,
                                       _wrapped(change, base, merged)))]


def _restores(graph: Graph, pr: PullRequest, files: tuple[FileChange, ...], blame: Blame,
              out: _Candidates) -> None:
    """`fixes` links to the PRs that removed code lines this PR puts back: a restore, or a
    fix that only re-adds what was deleted (nothing of the base to blame). Only lines the file
    does not hold at the base are looked for."""
    probes: list[tuple[str, str]] = []
    for change in files:
        if change.binary or change.status == "removed" or _not_code(change.path):
            continue
        new, numbered = _added_lines(pr, change, blame)
        if new is None:
            continue
        code = substance.substantive_lines(new, change.path)
        added = [line.strip() for n, line in numbered if code is None or n in code]
        # A line the file already holds is not missing from it: adding one more copy (a
        # `self.write("\n")` in another function) puts nothing back.
        held = {line.strip() for line in
                (blame.show(pr.base_commit, change.old_path or change.path) or "").split("\n")}
        distinctive = sorted({line for line in added
                              if len(line) >= RESTORE_MIN_LENGTH and line not in held},
                             key=len, reverse=True)
        probes += [(change.old_path or change.path, line) for line in distinctive[:2]]
    removers: Counter[str] = Counter()
    for path, line in probes[:RESTORE_PROBES]:
        sha = blame.removed_by(pr.base_commit, path, line)
        if sha is not None:
            removers[sha] += 1
    owners = graph.commit_owners(removers)
    known = _earlier(graph, pr, {n for n in owners.values() if n != pr.number})
    for sha, count in removers.items():
        number = owners.get(sha)
        if number in known:
            noun = "line" if count == 1 else "lines"
            out.add(Link(number, pr.number, LinkKind.FIXES,
                         f"puts back {count} code {noun} #{number} removed (git log -S)", 0.9))


def _same_area(graph: Graph, pr: PullRequest, mine: set[str], out: _Candidates) -> None:
    """``mine``: the PR's changed files that are not tests."""
    if not mine or pr.merged_at is None:
        return
    # Only touches inside the window come back, so every candidate is recent enough.
    since = aware(pr.merged_at) - SAME_AREA_WINDOW
    shared: Counter[int] = Counter()
    for path in sorted(mine)[:SAME_AREA_MAX_FILES]:
        shared.update(graph.recent_touches(path[:1024], since))
    known = _earlier(graph, pr, set(shared))
    size = len(mine)
    for number, common in shared.items():
        overlap = common / size
        if overlap >= SAME_AREA_OVERLAP and known.get(number) is not None:
            out.add(Link(number, pr.number, LinkKind.SAME_AREA,
                         f"{common} of {size} changed files also changed by #{number}",
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


def _extend(graph: Graph, pr: PullRequest, links: tuple[Link, ...],
            config: RepoConfig) -> tuple[Chain, bool, bool]:
    parent = choose_parent(links)
    alone = ChainState(chain_id(pr.repository, pr.number, pr.number), [pr.number], [])
    if parent is None:
        return _save(graph, alone, config, was_eligible=False, grew=False)
    tail = graph.chains_with(parent.earlier)
    for chain in tail:
        if chain.prs[-1] == parent.earlier and len(chain.prs) < config.max_chain_length:
            chain.prs.append(pr.number)
            chain.kinds.append(parent.kind.value)
            chain.version += 1
            return _save(graph, chain, config, was_eligible=chain.eligible, grew=True)
    # The neighbour already has a successor (or its chain is full): a new path forks here.
    base = tail[0] if tail else None
    prefix = base.prs[: base.prs.index(parent.earlier) + 1] if base else [parent.earlier]
    kinds = base.kinds[: len(prefix) - 1] if base else []
    keep = config.max_chain_length - 1
    if keep < 1:
        return _save(graph, alone, config, was_eligible=False, grew=False)
    if len(prefix) > keep:
        drop = len(prefix) - keep
        prefix, kinds = prefix[drop:], kinds[drop:]
    fork = ChainState(chain_id(pr.repository, prefix[0], pr.number), [*prefix, pr.number],
                      [*kinds, parent.kind.value])
    return _save(graph, fork, config, was_eligible=False, grew=True)


def _save(graph: Graph, chain: ChainState, config: RepoConfig, was_eligible: bool,
          grew: bool) -> tuple[Chain, bool, bool]:
    chain.eligible = (len(chain.prs) >= config.min_chain_length
                      and len(graph.touching_tests(chain.prs))
                      >= verifiable_needed(len(chain.prs)))
    graph.save_chain(chain)
    result = Chain(id=chain.id, repository=graph.repository, prs=tuple(chain.prs),
                   kinds=tuple(LinkKind(k) for k in chain.kinds), eligible=chain.eligible)
    return result, grew, chain.eligible and not was_eligible


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
