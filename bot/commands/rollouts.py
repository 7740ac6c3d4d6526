"""`davinci rollouts`: the rollout runs, newest first, and where each one is."""

from __future__ import annotations

import json

import click

from bot.commands import ambiguous
from bot.runs import RunView, run_views
from bot.runtime import Runtime
from rollout.state import minute
from rollout.store import AmbiguousRun, find_run, recent_runs


@click.group("rollouts")
def rollouts_group() -> None:
    """Inspect rollout runs (one per chain, length and policy): their state, stages and
    the corpus record an accepted one produced."""


@rollouts_group.command("list")
@click.option("--repository", default=None, help="Only this owner/name.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many runs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_runs(runtime: Runtime, repository: str | None, limit: int, as_json: bool) -> None:
    """List recent rollout runs, newest first."""
    with runtime.db.session() as session:
        views = run_views(session, recent_runs(session, limit, repository))
    if as_json:
        click.echo(json.dumps({"runs": [view.to_json() for view in views]}, indent=2))
        return
    if not views:
        click.echo("no rollouts yet: roll a chain out with `davinci rollout` or install the App")
    for view in views:
        click.echo(f"{view.id}  {_when(view)}  {view.repository or '?'}  chain {view.chain_id} "
                   f"({view.length} PRs)  {view.policy}")
        click.echo(f"    {view.text}")
        if view.record_id:
            click.echo(f"    record: davinci corpus show {view.record_id[:16]}")


@rollouts_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def show_run(runtime: Runtime, run_id: str, as_json: bool) -> None:
    """Show one rollout run (an id or a unique prefix) with its stages."""
    with runtime.db.session() as session:
        try:
            row = find_run(session, run_id)
        except AmbiguousRun as many:
            raise ambiguous(many, "runs") from None
        if row is None:
            raise click.ClickException(f"no rollout run {run_id!r} (see `davinci rollouts list`)")
        [view] = run_views(session, [row])
    if as_json:
        click.echo(json.dumps(view.to_json(), indent=2))
        return
    click.echo(f"rollout {view.id}")
    click.echo(f"  chain {view.chain_id} in {view.repository or '?'} ({view.length} PRs), "
               f"policy {view.policy}")
    click.echo(f"  state: {view.text}")
    click.echo(f"  attempts: {view.state.attempts}, updated {_when(view)}")
    for index, stage in enumerate(view.stages, start=1):
        click.echo(f"  {index}. #{stage.pr} {stage.verdict} (score {stage.score:.2f}, "
                   f"{stage.attempts} attempt(s))")
    if view.record_id:
        click.echo(f"  trajectory: davinci corpus show {view.record_id}")
    elif view.state.name == "accepted":
        click.echo("  trajectory: not in the corpus (refused by it; see its rejections)")


def _when(view: RunView) -> str:
    return minute(view.updated_at) if view.updated_at is not None else "-"


COMMANDS = [rollouts_group]
