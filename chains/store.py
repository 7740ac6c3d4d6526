"""Persistence of the PR graph: PRs, the indexes that keep mining incremental, links, chains."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class PullRequestRow(Base):
    __tablename__ = "chain_pull_requests"
    __table_args__ = (Index("ix_chain_prs_series", "repository", "series_key"),
                      Index("ix_chain_prs_title", "repository", "title_key"))

    repository: Mapped[str] = mapped_column(String(255), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(Text)
    title_key: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(255), default="")
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    base_commit: Mapped[str] = mapped_column(String(64))
    merge_commit: Mapped[str] = mapped_column(String(64))
    merged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    commits: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    linked_issues: Mapped[list[int]] = mapped_column(JSON, default=list)
    issue_texts: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    touches_tests: Mapped[bool] = mapped_column(default=False)
    """The PR changes tests and something beside them: a stage its tests can verify (rows
    mined before this rule count a PR that changes tests alone too)."""
    series_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    series_part: Mapped[int | None] = mapped_column(nullable=True)
    ignored: Mapped[bool] = mapped_column(default=False)
    mined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CommitRow(Base):
    """Which PR brought a commit: blame answers in commits, links are between PRs."""

    __tablename__ = "chain_commits"

    repository: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger)


class IssueRefRow(Base):
    __tablename__ = "chain_issue_refs"

    repository: Mapped[str] = mapped_column(String(255), primary_key=True)
    issue: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    closing: Mapped[bool] = mapped_column(default=False)


class FileTouchRow(Base):
    """Which PRs changed a file, for `same_area` without scanning history."""

    __tablename__ = "chain_file_touches"
    __table_args__ = (Index("ix_chain_file_touches_recent", "repository", "path", "merged_at"),)

    repository: Mapped[str] = mapped_column(String(255), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    merged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """Kept here so `same_area` reads only the recent touches of a file, however old it is."""


class LinkRow(Base):
    __tablename__ = "chain_links"
    __table_args__ = (Index("ix_chain_links_later", "repository", "later"),)

    repository: Mapped[str] = mapped_column(String(255), primary_key=True)
    earlier: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    later: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    evidence: Mapped[str] = mapped_column(Text)
    strength: Mapped[float] = mapped_column(Float)


class ChainRow(Base):
    __tablename__ = "chains"
    __table_args__ = (Index("ix_chains_repository", "repository"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repository: Mapped[str] = mapped_column(String(255))
    prs: Mapped[list[int]] = mapped_column(JSON)
    kinds: Mapped[list[str]] = mapped_column(JSON)
    eligible: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(default=1)
    """Grows with the chain, so a rollout job id per chain version is deterministic."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class MemberRow(Base):
    __tablename__ = "chain_members"
    __table_args__ = (Index("ix_chain_members_pr", "repository", "number"),)

    chain_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    repository: Mapped[str] = mapped_column(String(255))
    number: Mapped[int] = mapped_column(BigInteger)
