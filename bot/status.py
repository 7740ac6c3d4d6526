"""The one status comment the bot keeps on each merged pull request.

Rendering is a pure function of a :class:`PRStatus`; publishing finds the bot's earlier comment
by a hidden marker and the App's own login and edits it in place, under a Redis lock per PR,
so two jobs racing (or a create whose answer was lost) never leave two comments.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from github.GithubException import GithubException
from redis import Redis

from rollout.state import ChainState

MARKER = "<!-- davinci-agency:status pr={number} -->"
MAX_BODY = 60_000
"""GitHub refuses comment bodies over 65,536 characters; stay well under."""
EVIDENCE_CHARS = 90
FOOTER = ("daVinci-Agency turns chains of merged pull requests into verified training data "
          "for coding agents. Maintainers can comment `/davinci status`, `/davinci rollout`, "
          "`/davinci ignore` or `/davinci help`; `comment: false` in `.github/davinci.yml` "
          "stops these comments, `enabled: false` stops the App on this repository.")


@dataclass(frozen=True)
class LinkView:
    earlier: int
    later: int
    kind: str
    evidence: str


@dataclass(frozen=True)
class Trajectory:
    """The figures of a rollout that ran to a verdict."""

    tool_calls: int | None = None
    tokens: int | None = None
    policy: str | None = None


@dataclass(frozen=True)
class PRStatus:
    repository: str
    number: int
    chain_id: str | None = None
    chain_prs: tuple[int, ...] = ()
    links: tuple[LinkView, ...] = ()
    state: ChainState | None = None
    """The chain's state (`rollout.state`), as every surface shows it."""
    trajectory: Trajectory | None = None
    ignored: bool = False
    config_problem: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def chained(self) -> bool:
        """The PR joined a chain of two or more."""
        return bool(self.chain_id) and len(self.chain_prs) >= 2 and not self.ignored

    @property
    def worth_a_comment(self) -> bool:
        """Something to tell the maintainers: a chain, an exclusion, a broken config."""
        return self.chained or self.ignored or bool(self.config_problem)


def marker(number: int) -> str:
    return MARKER.format(number=number)


def render(status: PRStatus) -> str:
    """The Markdown body of the status comment, marker included."""
    parts = ["### daVinci-Agency"]
    if status.config_problem:
        parts.append(f"> [!WARNING]\n> `.github/davinci.yml` could not be used, so defaults "
                     f"apply: {_inline(status.config_problem, 200)}")
    if status.ignored:
        parts.append("This pull request is excluded from chains (`/davinci ignore`).")
    elif not status.chained:
        parts.append("This pull request has not joined a chain yet: no earlier pull request "
                     "it builds on, references, shares an issue with, or fixes was found.")
    else:
        parts.append(_render_chain(status))
    if status.state is not None and status.chained:
        parts.append(_render_state(status.state, status.trajectory))
    parts.extend(_inline(note, 300) for note in status.notes)
    parts.append(f"<sub>{FOOTER}</sub>")
    parts.append(marker(status.number))
    body = "\n\n".join(parts)
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - 200] + "\n\n… (shortened)\n\n" + marker(status.number)
    return body


def _render_chain(status: PRStatus) -> str:
    by_later = {link.later: link for link in status.links}
    path = " → ".join(f"**#{n}**" if n == status.number else f"#{n}" for n in status.chain_prs)
    rows = ["| stage | pull request | linked to the previous one by | evidence |",
            "|---|---|---|---|"]
    for index, number in enumerate(status.chain_prs, start=1):
        link = by_later.get(number)
        kind = f"`{link.kind}`" if link and index > 1 else "—"
        evidence = _inline(link.evidence, EVIDENCE_CHARS) if link and index > 1 else "—"
        rows.append(f"| {index} | #{number} | {kind} | {evidence or '—'} |")
    chain = (status.chain_id or "").replace("`", "")[:40]
    return (f"This pull request joined chain `{chain}` of {len(status.chain_prs)} pull "
            f"requests: {path}\n\n" + "\n".join(rows))


def _render_state(state: ChainState, trajectory: Trajectory | None) -> str:
    line = f"**Rollout:** {_inline(state.describe(), 300)}"
    if state.name not in ("accepted", "rejected") or trajectory is None:
        return line
    figures = [f"{state.stages} stages" if state.stages else "",
               f"{trajectory.tool_calls:,} tool calls" if trajectory.tool_calls is not None
               else "",
               f"{trajectory.tokens:,} tokens" if trajectory.tokens is not None else "",
               f"policy `{trajectory.policy.replace('`', '')[:20]}`" if trajectory.policy else ""]
    shown = [f for f in figures if f]
    return line + ("\n\n**Trajectory:** " + " · ".join(shown) if shown else "")


_SPACE = re.compile(r"\s+")
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")
_MARKUP = re.compile(r"([\\*_\[\]~!])")


def _inline(text: str, limit: int) -> str:
    """Untrusted text made safe for one table cell or line: Markdown and HTML escaped, no
    mentions, no line breaks; `#N` stays a link to that issue or pull request."""
    text = _SPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("`", "'").replace("|", "/").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKUP.sub(r"\\\1", text)
    return _MENTION.sub("@\u200b", text)


class IssueComments(Protocol):
    """The part of PyGithub's `Issue` we use."""

    def get_comments(self) -> Any: ...

    def create_comment(self, body: str) -> Any: ...


@dataclass(frozen=True)
class Published:
    action: str
    """`created`, `edited`, `unchanged` or `skipped`."""
    comment_id: int


class ContentLimiter:
    """Spaces out content-creating requests per installation (GitHub's secondary limits)."""

    def __init__(self, redis: Redis, key: str, per_minute: int = 20,
                 max_wait: float = 60.0) -> None:
        self.redis, self.key, self.per_minute, self.max_wait = redis, key, per_minute, max_wait

    def acquire(self) -> None:
        deadline = time.monotonic() + self.max_wait
        while True:
            window = int(time.time() // 60)
            counter = f"davinci:content:{self.key}:{window}"
            used = int(self.redis.incr(counter))
            self.redis.expire(counter, 120)
            if used <= self.per_minute:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError("content-creation budget for this minute is used up")
            time.sleep(min(2.0, max(0.1, 60 - time.time() % 60)))


@contextmanager
def pr_lock(redis: Redis, repository: str, number: int, timeout: float = 60.0) -> Iterator[None]:
    """Serialises everything that writes the status of one PR."""
    lock = redis.lock(f"davinci:lock:status:{repository}:{number}", timeout=timeout,
                      blocking_timeout=timeout)
    if not lock.acquire():
        raise TimeoutError(f"could not lock the status of {repository}#{number}")
    try:
        yield
    finally:
        lock.release()


def find_status_comment(issue: IssueComments, number: int, bot_login: str) -> Any | None:
    needle = marker(number)
    for comment in issue.get_comments():
        if comment.user.login == bot_login and needle in (comment.body or ""):
            return comment
    return None


def publish(issue: IssueComments, status: PRStatus, bot_login: str, redis: Redis,
            limiter: ContentLimiter | None = None, create: bool = True) -> Published:
    """Create or edit the status comment of ``status.number``; never duplicate it. With
    ``create`` False, only a comment that exists is kept up to date (`skipped` otherwise)."""
    body = render(status)
    with pr_lock(redis, status.repository, status.number):
        existing = find_status_comment(issue, status.number, bot_login)
        if existing is not None:
            if existing.body == body:
                return Published("unchanged", existing.id)
            if limiter:
                limiter.acquire()
            existing.edit(body)
            return Published("edited", existing.id)
        if not create:
            return Published("skipped", 0)
        if limiter:
            limiter.acquire()
        try:
            created = issue.create_comment(body)
        except (GithubException, OSError):
            # The POST may have succeeded although its answer was lost: look before retrying.
            again = find_status_comment(issue, status.number, bot_login)
            if again is None:
                raise
            if again.body != body:
                again.edit(body)
            return Published("created", again.id)
        return Published("created", created.id)
