"""Reading the mined graph back: chains with their links and evidence."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chains.store import ChainRow, LinkRow, PullRequestRow


def chain_rows(session: Session, repository: str | None = None,
               min_length: int = 2) -> list[ChainRow]:
    query = select(ChainRow).order_by(ChainRow.repository, ChainRow.id)
    if repository:
        query = query.where(ChainRow.repository == repository)
    return [row for row in session.scalars(query) if len(row.prs) >= min_length]


def find_chain(session: Session, chain_id: str) -> ChainRow | None:
    row = session.get(ChainRow, chain_id)
    if row is not None:
        return row
    matches = session.scalars(select(ChainRow).where(ChainRow.id.startswith(chain_id))
                              .limit(2)).all()
    return matches[0] if len(matches) == 1 else None


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


def chain_document(session: Session, row: ChainRow) -> dict[str, Any]:
    titles = dict(session.execute(select(PullRequestRow.number, PullRequestRow.title).where(
        PullRequestRow.repository == row.repository,
        PullRequestRow.number.in_(row.prs))).all())
    return {"id": row.id, "repository": row.repository, "prs": list(row.prs),
            "kinds": list(row.kinds), "eligible": row.eligible, "version": row.version,
            "titles": {str(n): titles.get(n, "") for n in row.prs},
            "links": chain_links(session, row)}


def all_links(session: Session, repository: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(LinkRow).where(LinkRow.repository == repository)
                           .order_by(LinkRow.later, LinkRow.earlier, LinkRow.kind))
    return [{"from": r.earlier, "to": r.later, "kind": r.kind, "evidence": r.evidence}
            for r in rows]


def pr_count(session: Session, repository: str) -> int:
    return int(session.scalar(select(func.count()).select_from(PullRequestRow)
                              .where(PullRequestRow.repository == repository)) or 0)
