"""Offline mining of a whole history in memory stores exactly what mining PR by PR stores."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.db import Database
from chains.config import RepoConfig
from chains.gitsource import GitBlame, GitHistory
from chains.graph import aware
from chains.mining import GraphChanged, attach_pull_request, mine_history
from chains.model import Commit, PullRequest
from chains.store import Base
from tests.chains.busy import REPOSITORY, build_busy_history

CONFIG = RepoConfig(max_chain_length=4, paths_ignore=("docs/*",))
UNSTABLE = {"mined_at", "updated_at"}
"""Columns that say when a row was written, not what mining found."""


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[PullRequest]]:
    path = build_busy_history(tmp_path_factory.mktemp("busy") / "repo")
    return path, GitHistory(path, repository=REPOSITORY).pull_requests()


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory: pytest.TempPathFactory,
               busy: tuple[Path, list[PullRequest]]) -> dict[str, list[tuple[Any, ...]]]:
    """The reference: every PR attached in its own transaction, as the live path does."""
    path, prs = busy
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('ref') / 'ref.db'}")
    db.create_schema()
    _one_by_one(db, path, prs)
    return _contents(db)


def _one_by_one(db: Database, path: Path, prs: list[PullRequest]) -> None:
    blame = GitBlame(path)
    for pr in prs:
        with db.session() as session:
            attach_pull_request(session, pr, blame, CONFIG)


def _contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of the graph, as plain values, in a stable order."""
    contents = {}
    with db.session() as session:
        for table in Base.metadata.sorted_tables:  # every table of the graph
            columns = [c for c in table.columns if c.name not in UNSTABLE]
            rows = session.execute(select(*columns)).all()
            contents[table.name] = sorted(
                (tuple(_plain(v) for v in row) for row in rows), key=repr)
    return contents


def _plain(value: Any) -> Any:
    return aware(value).isoformat() if isinstance(value, datetime) else value


def _batch(db: Database, path: Path, prs: list[PullRequest], batch: int = 2000) -> int:
    return mine_history(db.session, REPOSITORY, prs, GitBlame(path), CONFIG, batch=batch)


def test_the_busy_history_exercises_every_rule(one_by_one: dict[str, list[tuple[Any, ...]]],
                                               busy: tuple[Path, list[PullRequest]]) -> None:
    """Guards the comparison below: it means something only if every kind of link occurs."""
    links = one_by_one["chain_links"]
    kinds = Counter(row[3] for row in links)
    assert set(kinds) == {"references", "shares_issue", "fixes", "same_area"}, kinds
    evidence = " ".join(str(row[4]) for row in links)
    for words in ("reverts commit", "part 2 follows part 1", 'Revert "', "both close",
                  "both reference", "(git blame)"):
        assert words in evidence
    chains = one_by_one["chains"]
    assert any(len(row[2]) == CONFIG.max_chain_length for row in chains), "a full chain"
    firsts = Counter(row[2][0] for row in chains if len(row[2]) > 1)
    assert firsts.most_common(1)[0][1] > 1, "a fork: two paths from one PR"
    assert len(one_by_one["chain_pull_requests"]) == len(busy[1]) == 160


def test_mining_in_memory_stores_what_mining_pr_by_pr_stores(
        database: Database, busy: tuple[Path, list[PullRequest]],
        one_by_one: dict[str, list[tuple[Any, ...]]]) -> None:
    path, prs = busy
    assert _batch(database, path, prs, batch=37) == len(prs)
    assert _contents(database) == one_by_one


def test_the_offline_path_goes_on_from_what_the_live_path_stored(
        sqlite_db: Database, busy: tuple[Path, list[PullRequest]],
        one_by_one: dict[str, list[tuple[Any, ...]]]) -> None:
    path, prs = busy
    _one_by_one(sqlite_db, path, prs[:90])
    assert _batch(sqlite_db, path, prs) == len(prs) - 90
    assert _contents(sqlite_db) == one_by_one
    assert _batch(sqlite_db, path, prs) == 0, "a second run finds everything mined"
    assert _contents(sqlite_db) == one_by_one


def test_the_live_path_goes_on_from_what_the_offline_path_stored(
        sqlite_db: Database, busy: tuple[Path, list[PullRequest]],
        one_by_one: dict[str, list[tuple[Any, ...]]]) -> None:
    path, prs = busy
    _batch(sqlite_db, path, prs[:70])
    _one_by_one(sqlite_db, path, prs)
    assert _contents(sqlite_db) == one_by_one


def test_a_run_stopped_between_batches_keeps_whole_prs_and_a_rerun_finishes(
        sqlite_db: Database, busy: tuple[Path, list[PullRequest]],
        one_by_one: dict[str, list[tuple[Any, ...]]]) -> None:
    path, prs = busy
    seen = 0

    def interrupt(step: int) -> None:
        nonlocal seen
        seen += step
        if seen == 50:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mine_history(sqlite_db.session, REPOSITORY, prs, GitBlame(path), CONFIG, batch=20,
                     progress=interrupt)
    stored = {row[1] for row in _contents(sqlite_db)["chain_pull_requests"]}
    assert stored == {pr.number for pr in prs[:40]}, "two whole batches, nothing of the third"
    assert _batch(sqlite_db, path, prs) == len(prs) - 40
    assert _contents(sqlite_db) == one_by_one


def test_someone_mining_meanwhile_is_reported_and_the_batch_left_out(
        sqlite_db: Database, busy: tuple[Path, list[PullRequest]]) -> None:
    path, prs = busy
    blame = GitBlame(path)

    def meanwhile(step: int) -> None:
        if not _contents(sqlite_db)["chain_pull_requests"]:
            with sqlite_db.session() as session:  # another miner stores PR 5 first
                attach_pull_request(session, prs[4], blame, CONFIG)

    with pytest.raises(GraphChanged, match="mined by someone else"):
        mine_history(sqlite_db.session, REPOSITORY, prs[:10], blame, CONFIG,
                     progress=meanwhile)
    assert [row[1] for row in _contents(sqlite_db)["chain_pull_requests"]] == [prs[4].number]


def test_a_commit_two_prs_claim_belongs_to_the_later_either_way(tmp_path: Path) -> None:
    """GitHub lists a commit in two PRs when one branch was built on the other."""
    def pr(number: int, shas: list[str], minute: int) -> PullRequest:
        return PullRequest(REPOSITORY, number, f"Change {number}", merge_commit=f"m{number}",
                           base_commit="b", merged_at=datetime(2026, 1, 1, 0, minute, tzinfo=UTC),
                           commits=tuple(Commit(sha, f"work {sha}") for sha in shas))

    prs = [pr(1, ["aaa", "bbb"], 1), pr(2, ["bbb", "ccc"], 2), pr(3, ["ccc"], 3)]
    contents = []
    for name, live in (("live", 3), ("mixed", 1), ("offline", 0)):
        db = Database(f"sqlite:///{tmp_path / name}.db")
        db.create_schema()
        for one in prs[:live]:
            with db.session() as session:
                attach_pull_request(session, one, None, CONFIG)
        mine_history(db.session, REPOSITORY, prs, None, CONFIG, batch=1)
        contents.append(_contents(db))
    owners = {row[1]: row[2] for row in contents[0]["chain_commits"]}
    assert owners == {"aaa": 1, "bbb": 2, "ccc": 3, "m1": 1, "m2": 2, "m3": 3}
    assert contents[1] == contents[0] and contents[2] == contents[0]
