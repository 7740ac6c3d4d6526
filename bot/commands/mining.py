"""`davinci backfill`: mine a GitHub repository's recent merged pull requests."""

from __future__ import annotations

import json
import sys

import click
from github import GithubException
from requests import RequestException
from sqlalchemy import select

from bot.github import GitHubAppNotConfigured, app_client, installation_client
from bot.jobs.mining import backfill
from bot.models import Repository
from bot.runtime import Runtime
from chains.github_source import SourceError
from chains.mirror import MirrorError


def _installation_id(runtime: Runtime, repository: str) -> int:
    with runtime.db.session() as session:
        known = session.scalars(select(Repository.installation_id).where(
            Repository.full_name == repository)).first()
    if known:
        return int(known)
    owner, _, name = repository.partition("/")
    try:
        return int(app_client(runtime.settings).get_repo_installation(owner, name).id)
    except GithubException as exc:
        raise click.ClickException(
            f"the App is not installed on {repository} (GitHub answered {exc.status}); "
            "install it there first") from exc


@click.command("backfill")
@click.argument("repository", metavar="OWNER/REPO")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="How many of the most recently merged PRs to mine.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def backfill_command(runtime: Runtime, repository: str, limit: int, as_json: bool) -> None:
    """Mine the most recent merged PRs of OWNER/REPO, oldest first.

    Already mined PRs are skipped, so an interrupted backfill is finished by running it again.
    """
    if repository.count("/") != 1 or not all(repository.split("/")):
        raise click.BadParameter("expected OWNER/REPO", param_hint="OWNER/REPO")
    try:
        installation = _installation_id(runtime, repository)
        client = installation_client(runtime.settings, runtime.redis, installation)
        with click.progressbar(length=limit, label=f"backfilling {repository}",
                               file=sys.stderr, show_pos=True) as bar:
            def progress(done: int, total: int) -> None:
                bar.length = total
                bar.update(done - bar.pos)

            summary = backfill(runtime, client, installation, repository, limit, progress)
    except (GitHubAppNotConfigured, SourceError, MirrorError) as exc:
        raise click.ClickException(str(exc)) from exc
    except (GithubException, RequestException) as exc:
        raise click.ClickException(f"GitHub failed while backfilling {repository} ({exc}); "
                                   "run the command again to continue") from exc
    if summary.config_problem:
        click.echo(f"warning: {summary.config_problem}; defaults applied", err=True)
    if as_json:
        click.echo(json.dumps(summary.as_json()))
    elif summary.disabled:
        click.echo(f"{repository} is disabled by its .github/davinci.yml")
    else:
        click.echo(f"{repository}: {summary.mined} mined, {summary.skipped} already mined, "
                   f"{len(summary.rollouts)} rollouts enqueued")


COMMANDS = [backfill_command]
