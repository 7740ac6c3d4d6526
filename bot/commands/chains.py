"""`davinci mine` and `davinci chains`: mine a local clone, inspect what was mined."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session

from bot.commands import ambiguous
from bot.runtime import Runtime
from chains.config import CONFIG_PATH, parse_config
from chains.gitsource import GitBlame, GitHistory, GitSourceError, git
from chains.mining import GraphChanged, mine_history
from chains.queries import (
    AmbiguousChain,
    all_links,
    chain_document,
    chain_rows,
    find_chain,
    pr_count,
)
from chains.store import ChainRow
from rollout.state import ChainState, chain_states, mining_reasons


def mine_local(runtime: Runtime, path: Path, since: datetime | None = None,
               limit: int | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Mine a clone into the database; returns the `--json` document."""
    history = GitHistory(path)
    config_text = git(path, "show", f"HEAD:{CONFIG_PATH}", check=False) or None
    parsed = parse_config(config_text)
    if parsed.problem:
        click.echo(f"warning: {parsed.problem}; defaults apply", err=True)
    if history.shallow:
        click.echo("warning: this clone is shallow; PRs whose base commit is missing are "
                   "skipped (git fetch --unshallow for all of them)", err=True)
    prs = history.pull_requests(since=since, limit=limit)
    for reason in history.skipped:
        click.echo(f"warning: skipped {reason}", err=True)
    if not prs:
        click.echo(f"no merged pull requests found in {path} (looked for 'Merge pull request "
                   "#N from …' and 'Title (#N)' commits on the first-parent history)", err=True)
    with click.progressbar(length=len(prs), label="mining", file=sys.stderr,
                           show_pos=True, hidden=not show_progress) as bar, \
            GitBlame(path) as blame:
        mined = mine_history(runtime.db.session, history.repository, prs, blame,
                             parsed.config, progress=bar.update)
    if prs and show_progress:
        click.echo(f"mined {mined} new of {len(prs)} pull requests "
                   f"({len(prs) - mined} were mined before)", err=True)
    with runtime.db.session() as session:
        rows = chain_rows(session, history.repository, parsed.config.min_chain_length)
        unready = [chain_document(session, row, parsed.config.min_chain_length)
                   for row in rows if not row.eligible]  # mining's why, for these only
        states = chain_states(session, rows, mining_reasons(unready))
        return {
            "repository": history.repository,
            "pull_requests": pr_count(session, history.repository),
            "links": all_links(session, history.repository),
            "chains": [{"id": row.id, "prs": list(row.prs), "kinds": list(row.kinds),
                        "eligible": row.eligible, "state": states[row.id].name,
                        "state_text": states[row.id].describe()} for row in rows],
        }


@click.command()
@click.option("--git", "path", required=True, type=click.Path(path_type=Path),
              help="A local clone to mine (no network needed).")
@click.option("--since", type=click.DateTime(), default=None,
              help="Only PRs merged on or after this date.")
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help="Only the N most recently merged PRs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def mine(runtime: Runtime, path: Path, since: datetime | None, limit: int | None,
         as_json: bool) -> None:
    """Mine merged pull requests of a local git clone into chains.

    PRs come from merge commits ("Merge pull request #N from …") and squash merges
    ("Title (#N)"); links from references, shared issues, git blame (fixes) and file
    overlap. Results go to the database (DATABASE_URL, default under DAVINCI_DATA_DIR), in
    batches of 2,000 PRs: a run that is stopped keeps the batches it finished, and running it
    again mines the rest. PRs mined before are skipped.
    """
    try:
        document = mine_local(runtime, path, since, limit, show_progress=not as_json)
    except (GitSourceError, GraphChanged) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"{document['repository']}: {document['pull_requests']} pull requests, "
               f"{len(document['links'])} links, {len(document['chains'])} chains")
    for chain in document["chains"]:
        path_text = _path(chain["prs"], chain["kinds"])
        click.echo(f"  {chain['id']}  {path_text}  ({chain['state_text']})")


def _path(prs: list[int], kinds: list[str]) -> str:
    parts = [f"#{prs[0]}"]
    for number, kind in zip(prs[1:], kinds, strict=False):
        parts.append(f"-{kind}-> #{number}")
    return " ".join(parts)


@click.group("chains")
def chains_group() -> None:
    """Inspect mined chains."""


@chains_group.command("list")
@click.option("--repository", default=None, help="Only this owner/name.")
@click.option("--all", "show_all", is_flag=True, help="Include single-PR chains.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_chains(runtime: Runtime, repository: str | None, show_all: bool,
                as_json: bool) -> None:
    """List chains, longest first."""
    with runtime.db.session() as session:
        rows = chain_rows(session, repository, 1 if show_all else 2)
        documents = _with_states(session, rows)
    documents.sort(key=lambda d: (-len(d["prs"]), d["repository"], d["id"]))
    if as_json:
        click.echo(json.dumps({"chains": documents}, indent=2))
        return
    if not documents:
        click.echo("no chains yet: mine a repository with `davinci mine --git PATH`")
    for doc in documents:
        click.echo(f"{doc['id']}  {doc['repository']}  {_path(doc['prs'], doc['kinds'])}")
        ends = dict.fromkeys([doc["prs"][0], doc["prs"][-1]])
        click.echo("    " + " … ".join(f"#{n} {_short(doc['titles'][str(n)])}" for n in ends))
        if doc["why"] != doc["state_text"]:  # a chain mining found not eligible says so once
            click.echo(f"    {doc['why']}")
        click.echo(f"    state: {doc['state_text']}")


@chains_group.command("show")
@click.argument("chain_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def show_chain(runtime: Runtime, chain_id: str, as_json: bool) -> None:
    """Show one chain (an id or a unique prefix) with the evidence for each link."""
    with runtime.db.session() as session:
        try:
            row = find_chain(session, chain_id)
        except AmbiguousChain as many:
            raise ambiguous(many, "chains") from None
        if row is None:
            raise click.ClickException(f"no chain {chain_id!r} (see `davinci chains list`)")
        [doc] = _with_states(session, [row])
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"chain {doc['id']} in {doc['repository']} ({doc['why']})")
    click.echo(f"  state: {doc['state_text']}")
    if doc["run"]:
        click.echo(f"  rollout: davinci rollouts show {doc['run']}")
    click.echo(f"  1. #{doc['prs'][0]} {doc['titles'][str(doc['prs'][0])]}")
    for index, link in enumerate(doc["links"], start=2):
        click.echo(f"  {index}. #{link['to']} {doc['titles'][str(link['to'])]}")
        click.echo(f"       {link['kind']} #{link['from']}: {link['evidence']}")


def _with_states(session: Session, rows: list[ChainRow]) -> list[dict[str, Any]]:
    """Each chain's document with its state (`rollout.state`): `state`, `state_text` and the
    `run` that state comes from."""
    documents = [chain_document(session, row) for row in rows]
    states = chain_states(session, rows, mining_reasons(documents))
    return [{**doc, **_state_fields(states[doc["id"]])} for doc in documents]


def _state_fields(state: ChainState) -> dict[str, Any]:
    return {"state": state.name, "state_text": state.describe(), "run": state.run_id}


def _short(title: str, width: int = 48) -> str:
    return title if len(title) <= width else title[:width - 1].rsplit(" ", 1)[0] + "…"


COMMANDS = [mine, chains_group]
