"""`davinci run`: the offline pipeline in one command, ending in a funnel report."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import click

from bot.commands.chains import mine_local
from bot.funnel import Funnel, funnel
from bot.pipeline import POLICIES, PipelineError, roll_out_chain
from bot.runtime import Runtime
from bot.settings import Settings
from chains.gitsource import GitSourceError
from chains.mining import GraphChanged
from rollout.store import latest_verdicts, not_eligible_verdict
from rollout.task import TaskError
from sandbox.base import SandboxError


def roll_out_one(settings: Settings, path: Path, chain_id: str, policy: str) -> dict[str, Any]:
    """One chain's verdict, in a worker process of its own (its own database connection)."""
    runtime = Runtime(settings)
    try:
        return roll_out_chain(runtime, path, chain_id, policy)
    except (PipelineError, TaskError, SandboxError, LookupError) as exc:
        return _failed(chain_id, policy, str(exc))
    finally:
        runtime.close()


def _failed(chain_id: str, policy: str, error: str) -> dict[str, Any]:
    return {**not_eligible_verdict(chain_id, policy, f"the rollout failed: {error}"),
            "failed": True}


@click.command("run")
@click.option("--git", "path", required=True, type=click.Path(path_type=Path, exists=True),
              help="A local clone (no network needed beyond the package index for builds).")
@click.option("--workers", type=click.IntRange(1, 32), default=2, show_default=True,
              help="Rollouts at once (processes on this machine).")
@click.option("--chains", "limit", type=click.IntRange(min=1), default=None,
              help="Roll out at most this many chains not rolled out before (newest first).")
@click.option("--policy", type=click.Choice(POLICIES), default="replay", show_default=True,
              help="replay: the human commits; llm: the model at LLM_BASE_URL.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.pass_obj
def run(runtime: Runtime, path: Path, workers: int, limit: int | None, policy: str,
        as_json: bool) -> None:
    """Mine a clone, roll out every chain of two or more PRs, and report the funnel.

    Chains that already have a verdict are not rolled out again (run it again to go on where
    it stopped). The report counts chains mined -> environment built -> eligible after gold
    validation -> accepted, with the main reasons chains were lost at each step, the time
    spent, and how often an environment image was reused.
    """
    say = (lambda text: None) if as_json else (lambda text: click.echo(text, err=True))
    started = time.monotonic()
    try:
        mined = mine_local(runtime, path, show_progress=not as_json)
    except (GitSourceError, GraphChanged) as exc:
        raise click.ClickException(str(exc)) from exc
    mining = time.monotonic() - started
    chains = [c for c in mined["chains"] if len(c["prs"]) >= 2]
    with runtime.db.session() as session:
        known = latest_verdicts(session, [c["id"] for c in chains])
    todo = [c for c in reversed(chains) if c["id"] not in known][:limit]
    say(f"{len(chains)} chains of two or more PRs; {len(known)} rolled out before, "
        f"{len(todo)} to roll out with {workers} worker(s)")
    images = _environment_images()
    started = time.monotonic()
    fresh = _roll_out(runtime.settings, path, [c["id"] for c in todo], policy, workers, say)
    rolling = time.monotonic() - started
    after = _environment_images()
    built = len(after - images) if images is not None and after is not None else 0
    verdicts = [*known.values(), *fresh]
    report = funnel(verdicts, {"mining": mining, "rollouts": rolling}, built)
    if as_json:
        click.echo(json.dumps({"repository": mined["repository"], "funnel": report.to_json(),
                               "verdicts": verdicts}, indent=2))
        return
    _print(mined["repository"], report)


def _roll_out(settings: Settings, path: Path, chain_ids: list[str], policy: str, workers: int,
              say: Any) -> list[dict[str, Any]]:
    verdicts: list[dict[str, Any]] = []
    if not chain_ids:
        return verdicts
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(roll_out_one, settings, path, chain, policy): chain
                   for chain in chain_ids}
        for done, future in enumerate(as_completed(futures), start=1):
            try:
                verdict = future.result()
            except Exception as exc:  # noqa: BLE001 - one chain's crash is its verdict
                verdict = _failed(futures[future], policy, f"{type(exc).__name__}: {exc}")
            verdicts.append(verdict)
            state = ("ACCEPTED" if verdict["accepted"] else
                     "rejected" if verdict.get("eligible", True) else "not eligible")
            elapsed = time.monotonic() - started
            say(f"[{done}/{len(chain_ids)} {elapsed:5.0f}s] chain {futures[future]}: {state}"
                + (f" ({verdict['reason'][:120]})" if verdict.get("reason") else ""))
    return verdicts


def _environment_images() -> set[str] | None:
    try:
        from sandbox.docker import client
        from sandbox.environment import environment_images

        return {image["image"] for image in environment_images(client())}
    except SandboxError:
        return None


def _print(repository: str, report: Funnel) -> None:
    click.echo(f"\nFunnel of {repository}:")
    previous = None
    for step in report.steps:
        share = f" ({step.count / previous:.0%})" if previous else ""
        click.echo(f"  {step.name:<18} {step.count:>5}{share}")
        for reason, count in step.lost.items():
            click.echo(f"      lost {count:>4}: {reason}")
        previous = step.count or None
    click.echo(f"time: mining {report.seconds['mining']:.1f}s, rollouts "
               f"{report.seconds['rollouts']:.1f}s; environment images built "
               f"{report.environments_built}, reused {report.environments_reused} "
               f"({report.reuse_rate:.0%})")
    sys.stdout.flush()


COMMANDS = [run]
