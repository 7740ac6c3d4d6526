"""Reading the mined graph back: chains with their links and evidence."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chains.config import RepoConfig
from chains.model import Commit, FileChange, PullRequest, verifiable_needed
from chains.store import ChainRow, LinkRow, PullRequestRow

DEFAULT_MIN_LENGTH = RepoConfig().min_chain_length


def chain_rows(session: Session, repository: str | None = None,
               min_length: int = 2) -> list[ChainRow]:
    query = select(ChainRow).order_by(ChainRow.repository, ChainRow.id)
    if repository:
        query = query.where(ChainRow.repository == repository)
    return [row for row in session.scalars(query) if len(row.prs) >= min_length]


class AmbiguousPrefix(LookupError):
    """A prefix names more than one row; ``matches`` holds their ids (up to 20)."""

    def __init__(self, prefix: str, matches: list[str]) -> None:
        super().__init__(prefix)
        self.prefix, self.matches = prefix, matches


class AmbiguousChain(AmbiguousPrefix):
    """A prefix names more than one chain."""


def by_prefix(session: Session, model: Any, key: str,
              ambiguous: type[AmbiguousPrefix] = AmbiguousPrefix) -> Any | None:
    """The row of ``model`` (keyed by a string `id`) with this id or id prefix; None when
    there is none; ``ambiguous`` when the prefix names several."""
    row = session.get(model, key)
    if row is not None:
        return row
    matches = session.scalars(select(model).where(model.id.startswith(key, autoescape=True))
                              .order_by(model.id).limit(21)).all()
    if len(matches) > 1:
        raise ambiguous(key, [m.id for m in matches[:20]])
    return matches[0] if matches else None


def find_chain(session: Session, chain_id: str) -> ChainRow | None:
    """The chain with this id or id prefix; None when there is none; AmbiguousChain when
    the prefix names several."""
    found: ChainRow | None = by_prefix(session, ChainRow, chain_id, AmbiguousChain)
    return found


def chain_links(session: Session, row: ChainRow) -> list[dict[str, Any]]:
    """For each consecutive pair, the link that joined them, with its evidence."""
    pairs = list(zip(row.prs, row.prs[1:], row.kinds, strict=False))
    result = []
    for earlier, later, kind in pairs:
        link = session.get(LinkRow, (row.repository, earlier, later, kind))
        result.append({"from": earlier, "to": later, "kind": kind,
                       "evidence": link.evidence if link else "",
                       "strength": link.strength if link else None})
    return result


def chain_document(session: Session, row: ChainRow,
                   min_length: int = DEFAULT_MIN_LENGTH) -> dict[str, Any]:
    found = session.execute(select(PullRequestRow.number, PullRequestRow.title,
                                   PullRequestRow.touches_tests).where(
        PullRequestRow.repository == row.repository,
        PullRequestRow.number.in_(row.prs))).all()
    titles = {number: title for number, title, _ in found}
    tested = [number for number, _, tests in found if tests]
    return {"id": row.id, "repository": row.repository, "prs": list(row.prs),
            "kinds": list(row.kinds), "eligible": row.eligible, "version": row.version,
            "why": eligibility(row, len(tested), min_length),
            "titles": {str(n): titles.get(n, "") for n in row.prs},
            "links": chain_links(session, row)}


def eligibility(row: ChainRow, tested: int, min_length: int) -> str:
    """Why a chain is (or is not) eligible for a rollout, in words."""
    prs = len(row.prs)
    with_tests = f"{tested} of {prs} PRs change tests and code"
    if row.eligible:
        return f"eligible: {with_tests}"
    if prs < min_length:
        return f"not eligible: {prs} PR{'s' if prs != 1 else ''}, a rollout needs {min_length}"
    if not tested:
        return "not eligible: no PR changes tests and code, so no stage can be verified"
    needed = verifiable_needed(prs)
    if tested < needed:
        return (f"not eligible: {with_tests}; a rollout needs {needed} (only a PR that "
                "changes tests and code makes a stage its tests can verify)")
    return f"not eligible: {with_tests}"


def all_links(session: Session, repository: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(LinkRow).where(LinkRow.repository == repository)
                           .order_by(LinkRow.later, LinkRow.earlier, LinkRow.kind))
    return [{"from": r.earlier, "to": r.later, "kind": r.kind, "evidence": r.evidence}
            for r in rows]


def pr_count(session: Session, repository: str) -> int:
    return int(session.scalar(select(func.count()).select_from(PullRequestRow)
                              .where(PullRequestRow.repository == repository)) or 0)


def load_pull_requests(session: Session, repository: str,
                       numbers: list[int]) -> list[PullRequest]:
    """The stored PRs, in the order given (a chain's order)."""
    rows = {r.number: r for r in session.scalars(select(PullRequestRow).where(
        PullRequestRow.repository == repository, PullRequestRow.number.in_(numbers)))}
    missing = [n for n in numbers if n not in rows]
    if missing:
        raise LookupError(f"{repository}: PRs {missing} were never mined")
    return [_to_pull_request(rows[n]) for n in numbers]


def _to_pull_request(row: PullRequestRow) -> PullRequest:
    merged_at = row.merged_at
    if merged_at is not None and merged_at.tzinfo is None:
        merged_at = merged_at.replace(tzinfo=UTC)
    return PullRequest(
        repository=row.repository, number=row.number, title=row.title, body=row.body,
        author=row.author, labels=tuple(row.labels), base_commit=row.base_commit,
        merge_commit=row.merge_commit, merged_at=merged_at,
        commits=tuple(Commit(c["sha"], c["message"]) for c in row.commits),
        files=tuple(FileChange(path=f["path"], status=f.get("status", "modified"),
                               old_path=f.get("old_path"), binary=bool(f.get("binary")),
                               additions=int(f.get("additions", 0)),
                               deletions=int(f.get("deletions", 0))) for f in row.files),
        linked_issues=tuple(row.linked_issues),
        issue_texts={int(k): v for k, v in (row.issue_texts or {}).items()})
