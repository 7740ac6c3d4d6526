"""What mining asks of the PR graph, answered from the database or from memory.

The linking rules (`chains.mining`) read and grow the graph only through `Graph`. `SqlGraph`
answers in a database session, one PR per transaction: the live path, where each webhook brings
one PR. `MemoryGraph` holds one repository's graph in dictionaries and writes what it grew in bulk:
the offline path over a whole history, where a database round trip per lookup would cost a hundred
times what reading the history costs. Both answer every question in the same order, so a history
mined either way gives the same links and chains.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from chains import text
from chains.model import FileChange, Link, PullRequest
from chains.store import (
    ChainRow,
    CommitRow,
    FileTouchRow,
    IssueRefRow,
    LinkRow,
    MemberRow,
    PullRequestRow,
    utcnow,
)

RECENT_TOUCHES = 20
"""Earlier PRs per file considered for `same_area` (the most recent ones)."""
TOUCH_COLUMNS = ("repository", "path", "number", "merged_at")
ISSUE_REF_COLUMNS = ("repository", "issue", "number", "closing")
LINK_COLUMNS = ("repository", "earlier", "later", "kind", "evidence", "strength")
COMMIT_COLUMNS = ("repository", "sha", "number")
CHAIN_COLUMNS = ("id", "repository", "prs", "kinds", "eligible", "version", "updated_at")
MEMBER_COLUMNS = ("chain_id", "position", "repository", "number")


@dataclass
class ChainState:
    """A chain as mining grows it; `stored` positions already have their member rows."""

    id: str
    prs: list[int]
    kinds: list[str]
    eligible: bool = False
    version: int = 1
    stored: int = 0


class Graph(Protocol):
    """The questions the linking rules ask, and the three ways they grow the graph."""

    repository: str

    def is_mined(self, number: int) -> bool: ...

    def mined_among(self, numbers: Iterable[int]) -> set[int]:
        """Which of ``numbers`` are mined PRs (merged at any time)."""
        ...

    def merged_at(self, numbers: Iterable[int]) -> dict[int, datetime | None]:
        """Mined PRs among ``numbers`` that are not ignored: number -> merged_at."""
        ...

    def series_parts(self, key: str, part: int) -> list[tuple[int, str, datetime | None]]:
        """(number, title, merged_at) of not ignored PRs titled as that part, lowest first."""
        ...

    def titled(self, title_key: str) -> list[tuple[int, datetime | None]]:
        """(number, merged_at) of PRs with that normalised title, lowest number first."""
        ...

    def commit_with_prefix(self, prefix: str) -> int | None:
        """The PR that brought the commit whose sha starts with ``prefix``."""
        ...

    def commit_owners(self, shas: Iterable[str]) -> dict[str, int]: ...

    def described(self, numbers: Iterable[int]) -> dict[int, str]:
        """The title and description (one text each) of the mined PRs among ``numbers``."""
        ...

    def issue_refs(self, issues: Iterable[int]) -> list[tuple[int, int, bool]]:
        """(issue, PR number, closing) for PRs that name those issues, by issue then PR."""
        ...

    def recent_touches(self, path: str, since: datetime) -> list[int]:
        """PRs that changed ``path`` merged at or after ``since``, the most recent first."""
        ...

    def chains_with(self, number: int) -> list[ChainState]:
        """The chains holding PR ``number``, by id."""
        ...

    def touching_tests(self, numbers: Iterable[int]) -> set[int]: ...

    def record(self, pr: PullRequest, issues: dict[int, bool], touched: set[str],
               touches_tests: bool, ignored: bool = False) -> None:
        """Store the PR with the issues it names and the non-test files it changed;
        ``ignored``: a change of layout alone, never part of a chain, and blame looks
        through its commits."""
        ...

    def ignored_among(self, shas: Iterable[str]) -> frozenset[str]:
        """Which of ``shas`` are commits of ignored PRs (blame looks through them)."""
        ...

    def add_links(self, links: Iterable[Link]) -> None: ...

    def save_chain(self, chain: ChainState) -> None: ...


def pull_request_columns(pr: PullRequest, issues: dict[int, bool], touches_tests: bool,
                         series: tuple[str, int] | None, ignored: bool = False
                         ) -> dict[str, Any]:
    """The stored columns of a PR, the same for both graphs."""
    return dict(
        repository=pr.repository, number=pr.number, title=pr.title,
        title_key=title_key(pr.title), body=pr.body or "", author=pr.author,
        labels=list(pr.labels), base_commit=pr.base_commit, merge_commit=pr.merge_commit,
        merged_at=pr.merged_at, commits=[{"sha": c.sha, "message": c.message} for c in pr.commits],
        files=[_file_json(f) for f in pr.files], linked_issues=sorted(issues),
        issue_texts={str(k): v for k, v in pr.issue_texts.items()}, touches_tests=touches_tests,
        series_key=series[0] if series else None, series_part=series[1] if series else None,
        ignored=ignored)


def _file_json(change: FileChange) -> dict[str, object]:
    return {"path": change.path, "status": change.status, "old_path": change.old_path,
            "binary": change.binary, "additions": change.additions,
            "deletions": change.deletions}


def title_key(title: str) -> str:
    return " ".join(title.lower().split())[:255]


def commit_shas(pr: PullRequest) -> list[str]:
    """The commits a PR brought, its merge commit included, in a stable order."""
    return sorted(({c.sha for c in pr.commits} | {pr.merge_commit}) - {""})


def aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; every one we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SqlGraph:
    """The graph in a database session: every answer is a query, every write a row."""

    def __init__(self, session: Session, repository: str) -> None:
        self.session = session
        self.repository = repository

    def is_mined(self, number: int) -> bool:
        return self.session.get(PullRequestRow, (self.repository, number)) is not None

    def mined_among(self, numbers: Iterable[int]) -> set[int]:
        wanted = list(numbers)
        if not wanted:
            return set()
        return set(self.session.scalars(select(PullRequestRow.number).where(
            PullRequestRow.repository == self.repository, PullRequestRow.number.in_(wanted))))

    def merged_at(self, numbers: Iterable[int]) -> dict[int, datetime | None]:
        wanted = list(numbers)
        if not wanted:
            return {}
        rows = self.session.execute(select(PullRequestRow.number, PullRequestRow.merged_at).where(
            PullRequestRow.repository == self.repository, PullRequestRow.number.in_(wanted),
            PullRequestRow.ignored.is_(False)))
        return {number: merged for number, merged in rows}

    def series_parts(self, key: str, part: int) -> list[tuple[int, str, datetime | None]]:
        rows = self.session.execute(
            select(PullRequestRow.number, PullRequestRow.title, PullRequestRow.merged_at)
            .where(PullRequestRow.repository == self.repository,
                   PullRequestRow.series_key == key, PullRequestRow.series_part == part,
                   PullRequestRow.ignored.is_(False))
            .order_by(PullRequestRow.number))
        return [(n, t, m) for n, t, m in rows]

    def titled(self, key: str) -> list[tuple[int, datetime | None]]:
        rows = self.session.execute(
            select(PullRequestRow.number, PullRequestRow.merged_at)
            .where(PullRequestRow.repository == self.repository,
                   PullRequestRow.title_key == key)
            .order_by(PullRequestRow.number))
        return [(n, m) for n, m in rows]

    def commit_with_prefix(self, prefix: str) -> int | None:
        return self.session.scalar(
            select(CommitRow.number).where(CommitRow.repository == self.repository,
                                           CommitRow.sha.startswith(prefix))
            .order_by(CommitRow.sha).limit(1))

    def described(self, numbers: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        rows = self.session.execute(select(PullRequestRow.number, PullRequestRow.title,
                                           PullRequestRow.body)
                                    .where(PullRequestRow.repository == self.repository,
                                           PullRequestRow.number.in_(wanted)))
        return {number: text.description(title, body) for number, title, body in rows}

    def commit_owners(self, shas: Iterable[str]) -> dict[str, int]:
        wanted = list(shas)
        if not wanted:
            return {}
        rows = self.session.execute(select(CommitRow.sha, CommitRow.number).where(
            CommitRow.repository == self.repository, CommitRow.sha.in_(wanted)))
        return {sha: number for sha, number in rows}

    def issue_refs(self, issues: Iterable[int]) -> list[tuple[int, int, bool]]:
        wanted = list(issues)
        if not wanted:
            return []
        rows = self.session.execute(
            select(IssueRefRow.issue, IssueRefRow.number, IssueRefRow.closing)
            .where(IssueRefRow.repository == self.repository, IssueRefRow.issue.in_(wanted))
            .order_by(IssueRefRow.issue, IssueRefRow.number))
        return [(i, n, c) for i, n, c in rows]

    def recent_touches(self, path: str, since: datetime) -> list[int]:
        # The latest touches of each file only: the cost stays flat as history grows.
        return list(self.session.scalars(
            select(FileTouchRow.number)
            .where(FileTouchRow.repository == self.repository, FileTouchRow.path == path,
                   FileTouchRow.merged_at >= since)
            .order_by(FileTouchRow.merged_at.desc(), FileTouchRow.number.desc())
            .limit(RECENT_TOUCHES)))

    def chains_with(self, number: int) -> list[ChainState]:
        rows = self.session.scalars(
            select(ChainRow).join(MemberRow, MemberRow.chain_id == ChainRow.id)
            .where(MemberRow.repository == self.repository, MemberRow.number == number)
            .order_by(ChainRow.id))
        return [ChainState(r.id, list(r.prs), list(r.kinds), r.eligible, r.version,
                           stored=len(r.prs)) for r in rows]

    def touching_tests(self, numbers: Iterable[int]) -> set[int]:
        return set(self.session.scalars(select(PullRequestRow.number).where(
            PullRequestRow.repository == self.repository,
            PullRequestRow.number.in_(list(numbers)), PullRequestRow.touches_tests.is_(True))))

    def record(self, pr: PullRequest, issues: dict[int, bool], touched: set[str],
               touches_tests: bool, ignored: bool = False) -> None:
        self.session.add(PullRequestRow(**pull_request_columns(
            pr, issues, touches_tests, text.series(pr.title), ignored)))
        for sha in commit_shas(pr):
            self.session.merge(CommitRow(repository=pr.repository, sha=sha, number=pr.number))
        # Rows nothing reads back as objects go in as one bulk insert each.
        _insert(self.session, FileTouchRow, TOUCH_COLUMNS, _touch_rows(pr, touched))
        _insert(self.session, IssueRefRow, ISSUE_REF_COLUMNS, _issue_ref_rows(pr, issues))

    def ignored_among(self, shas: Iterable[str]) -> frozenset[str]:
        wanted = list(set(shas))
        if not wanted:
            return frozenset()
        return frozenset(self.session.scalars(
            select(CommitRow.sha).join(PullRequestRow, (PullRequestRow.repository
                                                        == CommitRow.repository)
                                       & (PullRequestRow.number == CommitRow.number))
            .where(CommitRow.repository == self.repository, CommitRow.sha.in_(wanted),
                   PullRequestRow.ignored.is_(True))))

    def add_links(self, links: Iterable[Link]) -> None:
        _insert(self.session, LinkRow, LINK_COLUMNS,
                [_link_row(self.repository, k) for k in links])

    def save_chain(self, chain: ChainState) -> None:
        row = self.session.get(ChainRow, chain.id)
        if row is None:
            self.session.add(ChainRow(id=chain.id, repository=self.repository,
                                      prs=list(chain.prs), kinds=list(chain.kinds),
                                      eligible=chain.eligible, version=chain.version))
        else:
            row.prs, row.kinds = list(chain.prs), list(chain.kinds)
            row.eligible, row.version = chain.eligible, chain.version
        self.session.flush()
        for position in range(chain.stored, len(chain.prs)):
            self.session.add(MemberRow(chain_id=chain.id, position=position,
                                       repository=self.repository, number=chain.prs[position]))
        chain.stored = len(chain.prs)


@dataclass
class _Known:
    merged_at: datetime | None
    touches_tests: bool
    ignored: bool = False


@dataclass
class _Pending:
    """What a `MemoryGraph` grew since it last wrote, as rows in the columns' order above."""

    prs: list[dict[str, Any]] = field(default_factory=list)
    commits: dict[str, int] = field(default_factory=dict)
    touches: list[tuple[Any, ...]] = field(default_factory=list)
    issue_refs: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[Any, ...]] = field(default_factory=list)
    chains: dict[str, ChainState] = field(default_factory=dict)


class MemoryGraph:
    """One repository's graph in dictionaries; `write` stores what it grew in one transaction.

    Load it, attach a batch of PRs, write, and go on with the next batch: each batch is all or
    nothing, so an interrupted run leaves whole PRs behind and a re-run mines the rest.
    """

    def __init__(self, repository: str) -> None:
        self.repository = repository
        self._prs: dict[int, _Known] = {}
        self._texts: dict[int, str] = {}
        self._series: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
        self._titles: dict[str, list[int]] = defaultdict(list)
        self._commits: dict[str, int] = {}
        self._ignored_commits: set[str] = set()
        self._stored_commits: set[str] = set()
        self._sorted_shas: list[str] | None = None
        self._issue_refs: dict[int, list[tuple[int, bool]]] = defaultdict(list)
        self._touches: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
        self._chains: dict[str, ChainState] = {}
        self._chains_of: dict[int, set[str]] = defaultdict(set)
        self._stored_chains: set[str] = set()
        self._pending = _Pending()

    @classmethod
    def load(cls, session: Session, repository: str) -> MemoryGraph:
        """What the database already holds of ``repository``: a handful of columns per row."""
        graph = cls(repository)
        rows = session.execute(select(
            PullRequestRow.number, PullRequestRow.merged_at, PullRequestRow.touches_tests,
            PullRequestRow.ignored, PullRequestRow.title, PullRequestRow.title_key,
            PullRequestRow.series_key, PullRequestRow.series_part, PullRequestRow.body)
            .where(PullRequestRow.repository == repository).order_by(PullRequestRow.number))
        for number, merged, tests, ignored, title, key, s_key, s_part, body in rows:
            merged = aware(merged) if merged else None
            graph._prs[number] = _Known(merged, tests, ignored)
            graph._texts[number] = text.description(title, body)
            graph._titles[key].append(number)
            if s_key is not None and s_part is not None:
                graph._series[(s_key, s_part)].append((number, title))
        for sha, number in session.execute(select(CommitRow.sha, CommitRow.number).where(
                CommitRow.repository == repository)):
            graph._commits[sha] = number
        graph._stored_commits = set(graph._commits)
        graph._ignored_commits = {sha for sha, number in graph._commits.items()
                                  if graph._prs.get(number, _Known(None, False)).ignored}
        for issue, number, closing in session.execute(
                select(IssueRefRow.issue, IssueRefRow.number, IssueRefRow.closing)
                .where(IssueRefRow.repository == repository)):
            bisect.insort(graph._issue_refs[issue], (number, closing))
        for path, number, merged in session.execute(
                select(FileTouchRow.path, FileTouchRow.number, FileTouchRow.merged_at)
                .where(FileTouchRow.repository == repository)):
            if merged is not None:
                bisect.insort(graph._touches[path], (aware(merged), number))
        for row in session.scalars(select(ChainRow).where(ChainRow.repository == repository)):
            graph._index_chain(ChainState(row.id, list(row.prs), list(row.kinds), row.eligible,
                                          row.version, stored=len(row.prs)))
            graph._stored_chains.add(row.id)
        return graph

    def is_mined(self, number: int) -> bool:
        return number in self._prs

    def mined_among(self, numbers: Iterable[int]) -> set[int]:
        return {n for n in numbers if n in self._prs}

    def merged_at(self, numbers: Iterable[int]) -> dict[int, datetime | None]:
        known = ((n, self._prs.get(n)) for n in numbers)
        return {n: k.merged_at for n, k in known if k is not None and not k.ignored}

    def series_parts(self, key: str, part: int) -> list[tuple[int, str, datetime | None]]:
        return [(n, title, self._prs[n].merged_at) for n, title in self._series.get((key, part), ())
                if not self._prs[n].ignored]

    def titled(self, key: str) -> list[tuple[int, datetime | None]]:
        return [(n, self._prs[n].merged_at) for n in self._titles.get(key, ())]

    def commit_with_prefix(self, prefix: str) -> int | None:
        if prefix in self._commits:
            return self._commits[prefix]
        if self._sorted_shas is None:
            self._sorted_shas = sorted(self._commits)
        at = bisect.bisect_left(self._sorted_shas, prefix)
        if at < len(self._sorted_shas) and self._sorted_shas[at].startswith(prefix):
            return self._commits[self._sorted_shas[at]]
        return None

    def described(self, numbers: Iterable[int]) -> dict[int, str]:
        return {n: self._texts[n] for n in numbers if n in self._texts}

    def commit_owners(self, shas: Iterable[str]) -> dict[str, int]:
        return {sha: self._commits[sha] for sha in shas if sha in self._commits}

    def ignored_among(self, shas: Iterable[str]) -> frozenset[str]:
        return frozenset(sha for sha in shas if sha in self._ignored_commits)

    def issue_refs(self, issues: Iterable[int]) -> list[tuple[int, int, bool]]:
        return [(issue, number, closing) for issue in sorted(set(issues))
                for number, closing in self._issue_refs.get(issue, ())]

    def recent_touches(self, path: str, since: datetime) -> list[int]:
        touches = self._touches.get(path)
        if not touches:
            return []
        start = max(bisect.bisect_left(touches, (since, -1)), len(touches) - RECENT_TOUCHES)
        return [number for _, number in reversed(touches[start:])]

    def chains_with(self, number: int) -> list[ChainState]:
        return [self._chains[i] for i in sorted(self._chains_of.get(number, ()))]

    def touching_tests(self, numbers: Iterable[int]) -> set[int]:
        return {n for n in numbers if n in self._prs and self._prs[n].touches_tests}

    def record(self, pr: PullRequest, issues: dict[int, bool], touched: set[str],
               touches_tests: bool, ignored: bool = False) -> None:
        series = text.series(pr.title)
        merged = aware(pr.merged_at) if pr.merged_at else None
        self._prs[pr.number] = _Known(merged, touches_tests, ignored)
        self._texts[pr.number] = text.description(pr.title, pr.body)
        self._pending.prs.append(pull_request_columns(pr, issues, touches_tests, series,
                                                      ignored))
        if ignored:
            self._ignored_commits.update(commit_shas(pr))
        bisect.insort(self._titles[title_key(pr.title)], pr.number)
        if series:
            bisect.insort(self._series[series], (pr.number, pr.title))
        for sha in commit_shas(pr):
            if sha not in self._commits:
                self._sorted_shas = None
            self._commits[sha] = self._pending.commits[sha] = pr.number
        self._pending.touches += _touch_rows(pr, touched)
        if merged is not None:
            for path in touched:
                bisect.insort(self._touches[path], (merged, pr.number))
        self._pending.issue_refs += _issue_ref_rows(pr, issues)
        for issue, closing in issues.items():
            bisect.insort(self._issue_refs[issue], (pr.number, closing))

    def add_links(self, links: Iterable[Link]) -> None:
        self._pending.links.extend(_link_row(self.repository, k) for k in links)

    def save_chain(self, chain: ChainState) -> None:
        self._index_chain(chain)
        self._pending.chains[chain.id] = chain

    def _index_chain(self, chain: ChainState) -> None:
        self._chains[chain.id] = chain
        for number in chain.prs:
            self._chains_of[number].add(chain.id)

    def write(self, session: Session) -> int:
        """Store everything grown since the last write; returns how many PRs that was."""
        pending, self._pending = self._pending, _Pending()
        now = utcnow()
        if pending.prs:
            columns = (*pending.prs[0], "mined_at")
            _insert(session, PullRequestRow, columns,
                    [(*row.values(), now) for row in pending.prs])
        new = [sha for sha in pending.commits if sha not in self._stored_commits]
        moved = [sha for sha in pending.commits if sha in self._stored_commits]
        _insert(session, CommitRow, COMMIT_COLUMNS,
                [(self.repository, sha, pending.commits[sha]) for sha in new])
        if moved:
            session.connection().execute(
                update(CommitRow).where(CommitRow.repository == self.repository,
                                        CommitRow.sha == bindparam("s"))
                .values(number=bindparam("n")),
                [{"s": sha, "n": pending.commits[sha]} for sha in moved])
        self._stored_commits.update(new)
        _insert(session, FileTouchRow, TOUCH_COLUMNS, pending.touches)
        _insert(session, IssueRefRow, ISSUE_REF_COLUMNS, pending.issue_refs)
        _insert(session, LinkRow, LINK_COLUMNS, pending.links)
        self._write_chains(session, list(pending.chains.values()), now)
        return len(pending.prs)

    def _write_chains(self, session: Session, chains: list[ChainState], now: datetime) -> None:
        fresh = [c for c in chains if c.id not in self._stored_chains]
        grown = [c for c in chains if c.id in self._stored_chains]
        _insert(session, ChainRow, CHAIN_COLUMNS, [
            (c.id, self.repository, c.prs, c.kinds, c.eligible, c.version, now) for c in fresh])
        if grown:
            session.connection().execute(
                update(ChainRow).where(ChainRow.id == bindparam("chain"))
                .values(prs=bindparam("p"), kinds=bindparam("k"), eligible=bindparam("e"),
                        version=bindparam("v"), updated_at=now),
                [{"chain": c.id, "p": c.prs, "k": c.kinds, "e": c.eligible, "v": c.version}
                 for c in grown])
        _insert(session, MemberRow, MEMBER_COLUMNS, [
            (c.id, position, self.repository, c.prs[position])
            for c in chains for position in range(c.stored, len(c.prs))])
        for chain in chains:
            chain.stored = len(chain.prs)
        self._stored_chains.update(c.id for c in fresh)


def _touch_rows(pr: PullRequest, touched: set[str]) -> list[tuple[Any, ...]]:
    """The PR's file touches in TOUCH_COLUMNS order."""
    return [(pr.repository, path, pr.number, pr.merged_at) for path in sorted(touched)]


def _issue_ref_rows(pr: PullRequest, issues: dict[int, bool]) -> list[tuple[Any, ...]]:
    """The PR's issue references in ISSUE_REF_COLUMNS order."""
    return [(pr.repository, issue, pr.number, closing) for issue, closing in issues.items()]


def _link_row(repository: str, link: Link) -> tuple[Any, ...]:
    """A link's values in LINK_COLUMNS order."""
    return (repository, link.earlier, link.later, link.kind.value, link.evidence[:500],
            link.strength)


def _insert(session: Session, model: type[Any], columns: tuple[str, ...],
            rows: list[tuple[Any, ...]]) -> None:
    """Many rows in one executemany through the session's transaction.

    The rows go to the driver as tuples, each value through its column type's own bind
    processor (JSON, dates), so they are stored exactly as an ORM insert would store them,
    without the per-row parameter dictionaries SQLAlchemy builds (most of a bulk insert's cost).
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    table = model.__table__
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                  for name in columns]
    if any(processors):
        rows = [tuple(value if process is None else process(value)
                      for process, value in zip(processors, row, strict=True)) for row in rows]
    quote = dialect.identifier_preparer
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(quote.format_column(table.c[name]) for name in columns)
    connection.exec_driver_sql(f"INSERT INTO {quote.format_table(table)} ({names}) "
                               f"VALUES ({', '.join([marker] * len(columns))})", rows)
