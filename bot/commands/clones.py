"""`--git PATH` checked before work starts: a git clone, and the one a chain was mined from."""

from __future__ import annotations

from pathlib import Path

import click

from bot.runtime import Runtime
from chains.gitsource import git
from chains.queries import AmbiguousChain, find_chain, load_pull_requests


def require_clone(path: Path) -> None:
    """A git work tree at ``path``, or a one-line refusal naming --git."""
    if git(path, "rev-parse", "--is-inside-work-tree", check=False).strip() != "true":
        raise click.ClickException(f"--git {path} is not a git clone: pass the local clone "
                                   "of the repository")


def require_chain_commits(runtime: Runtime, path: Path, chain_id: str) -> None:
    """Every merge commit of the chain is in the clone at ``path`` (else it is another
    repository's clone, or a shallow one). A chain that is unknown or ambiguous is left to
    the command, which says so."""
    require_clone(path)
    with runtime.db.session() as session:
        try:
            row = find_chain(session, chain_id)
        except AmbiguousChain:
            return
        if row is None:
            return
        prs = load_pull_requests(session, row.repository, list(row.prs))
    for pr in prs:
        if not _has_commit(path, pr.merge_commit):
            raise click.ClickException(
                f"--git {path} does not hold commit {pr.merge_commit[:12]} (PR #{pr.number} of "
                f"{row.repository}): pass the clone chain {row.id[:12]} was mined from, or "
                "fetch its full history (git fetch --unshallow)")


def _has_commit(path: Path, sha: str) -> bool:
    return bool(sha) and git(path, "cat-file", "-t", sha, check=False).strip() == "commit"
