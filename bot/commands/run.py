"""`davinci run`: the offline pipeline in one command, ending in a funnel report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from bot.batch import VIA, BatchError, Interrupted, environment_images_now, roll_out_chains
from bot.commands.chains import mine_local
from bot.funnel import funnel, render
from bot.pipeline import POLICIES
from bot.runtime import Runtime
from chains.gitsource import GitSourceError
from chains.mining import GraphChanged
from chains.model import MIN_VERIFIABLE
from rollout.store import latest_verdicts


@click.command("run")
@click.option("--git", "path", required=True, type=click.Path(path_type=Path, exists=True),
              help="A local clone (no network needed beyond the package index for builds).")
@click.option("--workers", type=click.IntRange(1, 32), default=2, show_default=True,
              help="Rollouts at once (processes on this machine).")
@click.option("--chains", "limit", type=click.IntRange(min=1), default=None,
              help="Roll out at most this many chains not rolled out before (newest first).")
@click.option("--policy", type=click.Choice(POLICIES), default="replay", show_default=True,
              help="replay: the human commits; llm: the model at LLM_BASE_URL.")
@click.option("--via", type=click.Choice(VIA), default="auto", show_default=True,
              help="local: a process pool here (--workers); rq: jobs on davinci-rollouts for "
                   "`davinci worker`s that see this path and share the database; auto: rq "
                   "when a worker listens, else local.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.pass_obj
def run(runtime: Runtime, path: Path, workers: int, limit: int | None, policy: str, via: str,
        as_json: bool) -> None:
    """Mine a clone, roll out every eligible chain, and report the funnel.

    A chain is eligible when it has two or more PRs and at least two of them change tests
    and code: only those give stages whose hidden tests can verify the work (`davinci chains list`
    says why the others are not).

    Chains that already have a verdict are not rolled out again (run it again to go on where
    it stopped). Rollouts run in a process pool here, or as rq jobs for `davinci worker`s
    (--via; the workers must see PATH and use the same database).

    The report counts chains mined -> environment built -> eligible after gold validation ->
    accepted, with the main reasons chains were lost at each step, the time spent, and how
    often an environment image was reused.
    """
    say = (lambda text: None) if as_json else (lambda text: click.echo(text, err=True))
    started = time.monotonic()
    try:
        mined = mine_local(runtime, path, show_progress=not as_json)
    except (GitSourceError, GraphChanged) as exc:
        raise click.ClickException(str(exc)) from exc
    mining = time.monotonic() - started
    longer = [c for c in mined["chains"] if len(c["prs"]) >= 2]
    chains = [c for c in longer if c["eligible"]]
    with runtime.db.session() as session:
        known = latest_verdicts(session, [c["id"] for c in chains])
    todo = [c for c in reversed(chains) if c["id"] not in known][:limit]
    say(f"{len(longer)} chains of two or more PRs, {len(chains)} eligible (at least "
        f"{MIN_VERIFIABLE} of their PRs change tests and code, so as many stages can be verified); "
        f"{len(known)} rolled out before, {len(todo)} to roll out")
    images = environment_images_now()
    started = time.monotonic()
    try:
        fresh = [outcome.to_json() for outcome in roll_out_chains(
            runtime.settings, path, [c["id"] for c in todo], policy, workers, say, via)]
    except BatchError as exc:
        raise click.ClickException(str(exc)) from exc
    except Interrupted as stop:
        click.echo(f"interrupted: {stop}; the rollouts under way were stopped and their "
                   "sandboxes removed", err=True)
        raise SystemExit(130) from None
    rolling = time.monotonic() - started
    after = environment_images_now()
    built = len(after - images) if images is not None and after is not None else 0
    verdicts = [*known.values(), *fresh]
    report = funnel(verdicts, {"mining": mining, "rollouts": rolling}, built)
    if as_json:
        click.echo(json.dumps({"repository": mined["repository"], "funnel": report.to_json(),
                               "verdicts": verdicts}, indent=2))
        return
    click.echo(render(mined["repository"], report))
    sys.stdout.flush()


COMMANDS = [run]
