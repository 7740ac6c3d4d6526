"""`davinci rollout` and `davinci demo`."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import click

from bot.batch import BatchError, environment_images_now, roll_out_chains
from bot.commands.chains import mine_local
from bot.commands.clones import require_chain_commits
from bot.funnel import funnel, render
from bot.pipeline import POLICIES, PipelineError, Progress, roll_out_chain
from bot.runtime import Runtime
from chains.config import rollout_limit
from chains.gitsource import GitSourceError
from rollout.task import TaskError
from sandbox.base import SandboxError


def _progress(quiet: bool) -> Any:
    def show(progress: Progress) -> None:
        if not quiet:
            click.echo(f"  {progress.step}: {progress.detail}", err=True)
    return show


@click.command()
@click.option("--git", "path", required=True, type=click.Path(path_type=Path, exists=True),
              help="The local clone the chain was mined from.")
@click.option("--chain", "chain_id", required=True, help="Chain id (or a unique prefix).")
@click.option("--policy", type=click.Choice(POLICIES), default="replay", show_default=True,
              help="replay: the human commits; llm: the model at LLM_BASE_URL.")
@click.option("--max-steps", type=int, default=None,
              help="Model turns over the whole rollout [default: 200, or DAVINCI_MAX_STEPS].")
@click.option("--max-attempts", type=int, default=None,
              help="Submissions per stage [default: 3, or DAVINCI_MAX_ATTEMPTS].")
@click.option("--max-tokens", type=int, default=None,
              help="Completion tokens the model may write over the rollout "
                   "[default: 400000, or DAVINCI_MAX_TOKENS].")
@click.option("--threshold", type=float, default=None,
              help="Chain score a trajectory needs to be accepted "
                   "[default: 0.8, or DAVINCI_THRESHOLD].")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as one JSON document.")
@click.pass_obj
def rollout(runtime: Runtime, path: Path, chain_id: str, policy: str, as_json: bool,
            **limits: int | float | None) -> None:
    """Run one rollout of a mined chain inline: validate the task in a sandbox, run the agent
    through every stage, verify, and append an accepted trajectory to the corpus.

    Limits come from `.github/davinci.yml` (`rollout:`), then the environment, then these
    options. A rollout the verifier rejects is a normal outcome (exit code 0,
    `accepted: false`).
    """
    require_chain_commits(runtime, path, chain_id)
    chosen: dict[str, int | float] = {}
    for name, value in limits.items():
        if value is not None:
            try:
                chosen[name] = rollout_limit(name, value)
            except ValueError as exc:
                raise click.BadParameter(str(exc).strip("`"),
                                         param_hint=f"--{name.replace('_', '-')}") from None
    try:
        outcome = roll_out_chain(runtime, path, chain_id, policy, limits=chosen,
                                 on_progress=_progress(as_json))
    except (PipelineError, TaskError, SandboxError, LookupError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(outcome.to_json(), indent=2))
        return
    _print_verdict(outcome.to_json())


def _print_verdict(verdict: dict[str, Any]) -> None:
    if not verdict.get("eligible", True):
        click.echo(f"chain {verdict['chain']}: not eligible ({verdict['reason']})")
        return
    state = "ACCEPTED" if verdict["accepted"] else "rejected"
    click.echo(f"chain {verdict['chain']}: {state}, score {verdict['score']:.2f}, "
               f"{verdict['tool_calls']} tool calls, {verdict['tokens']:,} tokens "
               f"({verdict['policy']})")
    for stage in verdict["stages"]:
        click.echo(f"  PR #{stage['pr']}: {stage['verdict']} after {stage['attempts']} "
                   f"attempt(s), score {stage['score']:.2f}")
    if verdict.get("stored") and verdict.get("record_id"):
        click.echo(f"  trajectory: davinci corpus show {verdict['record_id'][:16]}")


@click.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Where the demo puts everything, its own database included (default: "
                   "DAVINCI_DATA_DIR/demo). Each run deletes and remakes this folder; a folder "
                   "the demo did not make is refused.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.pass_obj
def demo(runtime: Runtime, directory: Path | None, as_json: bool) -> None:
    """The whole pipeline on a sample repository, offline, in a few minutes.

    Builds a small project with a realistic PR history, mines its chains, validates the
    tasks and runs replay rollouts in the Docker sandbox (the local one only with
    DAVINCI_SANDBOX=local), appends accepted trajectories to a fresh corpus, exports it, and
    prints a report. The demo's database is its own, in its folder, so sample trajectories
    never mix with a real corpus; the report says how to look at it.
    """
    from bot.sample import build_sample_repository
    from corpus.export import export
    from corpus.stats import corpus_stats

    started = time.monotonic()
    root = (directory or runtime.settings.data_dir / "demo").resolve()
    _fresh(root)
    demo_runtime = Runtime(runtime.settings.with_overrides(data_dir=root, database_url=""))
    say = (lambda text: None) if as_json else (lambda text: click.echo(text, err=True))
    say(f"[1/5] building the sample repository in {root / 'textkit'}")
    sample = build_sample_repository(root / "textkit")
    say(f"[2/5] mining {len(sample.prs)} merged pull requests")
    try:
        mined = mine_local(demo_runtime, sample.path, show_progress=False)
    except GitSourceError as exc:
        raise click.ClickException(str(exc)) from exc
    chains = [c for c in mined["chains"] if c["eligible"]]
    for chain in mined["chains"]:
        say(f"      chain {' → '.join(f'#{n}' for n in chain['prs'])} "
            f"({', '.join(chain['kinds'])})")
    say(f"[3/5] rolling out {len(chains)} chains (replay policy), as `davinci run` does")
    images = environment_images_now()
    rolling = time.monotonic()
    try:
        verdicts = [outcome.to_json() for outcome in roll_out_chains(
            demo_runtime.settings, sample.path, [c["id"] for c in chains], "replay", 2, say,
            via="local")]
    except BatchError as exc:
        raise click.ClickException(str(exc)) from exc
    failed = [v for v in verdicts if v.get("failed")]
    if failed:
        raise click.ClickException(f"rollout of chain {failed[0]['chain']} failed: "
                                   f"{failed[0]['reason']}")
    built = environment_images_now()
    order = {c["id"]: i for i, c in enumerate(chains)}
    verdicts.sort(key=lambda v: order.get(v["chain"], 0))
    report_funnel = funnel(verdicts, {"mining": 0.0, "rollouts": time.monotonic() - rolling},
                           len(built - images) if images is not None and built is not None else 0)
    say("[4/5] exporting the corpus")
    with demo_runtime.db.session() as session:
        exported = export(session, root / "export", "openai")
        stats = corpus_stats(session)
    report = {
        "repository": mined["repository"], "pull_requests": mined["pull_requests"],
        "links": mined["links"], "chains": mined["chains"], "rollouts": verdicts,
        "stages_verified": sum(1 for v in verdicts for s in v["stages"]
                               if s["verdict"] == "passed"),
        "trajectories_accepted": sum(1 for v in verdicts if v["accepted"]),
        "corpus": {k: stats[k] for k in ("records", "acceptance_rate", "mean_tokens",
                                         "mean_tool_calls")},
        "export": {"directory": str(root / "export"), "records": exported.records,
                   "manifest": str(exported.manifest) if exported.manifest else None},
        "funnel": report_funnel.to_json(),
        "seconds": round(time.monotonic() - started, 1),
        "database": demo_runtime.settings.effective_database_url,
    }
    demo_runtime.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    say("[5/5] report")
    click.echo(f"\nMined {report['pull_requests']} PRs of {report['repository']}: "
               f"{len(report['links'])} links, {len(report['chains'])} chains.")
    for chain in report["chains"]:
        click.echo(f"  {' → '.join(f'#{n}' for n in chain['prs'])}  "
                   f"({', '.join(chain['kinds'])})")
    click.echo(f"Stages verified: {report['stages_verified']}; trajectories accepted: "
               f"{report['trajectories_accepted']} of {len(verdicts)}.")
    for verdict in verdicts:
        _print_verdict(verdict)
    click.echo(render(mined["repository"], report_funnel).lstrip("\n"))
    click.echo(f"Corpus: {stats['records']} trajectories, mean "
               f"{stats['mean_tool_calls']:.0f} tool calls, {stats['mean_tokens']:,.0f} tokens.")
    click.echo(f"Exported to {report['export']['directory']} "
               f"(manifest {Path(report['export']['manifest'] or '-').name}); "
               f"took {report['seconds']} s.")
    click.echo("The demo keeps its own database, apart from yours; look at it with:\n"
               f"  DATABASE_URL={demo_runtime.settings.effective_database_url} "
               "davinci chains list   (or corpus stats, corpus show ID)")


def _fresh(root: Path) -> None:
    marker = root / ".davinci-demo"
    if root.exists():
        if any(root.iterdir()) and not marker.exists():
            raise click.ClickException(f"{root} exists and is not a demo directory; "
                                       "pass --dir with an empty or new directory")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    marker.write_text("made by davinci demo; removed and remade by the next run\n")


COMMANDS = [rollout, demo]
