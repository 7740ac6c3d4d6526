"""`davinci serve` and `davinci worker`: the two long-running processes."""

from __future__ import annotations

import json
import os
import sys

import click
from redis.exceptions import RedisError

from bot import webhooks
from bot.runtime import QUEUES, Runtime


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, envvar="PORT",
              help="Port to listen on (also read from $PORT).")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.pass_obj
def serve(runtime: Runtime, host: str, port: int, workers: int) -> None:
    """Serve the webhook endpoint and dashboard under gunicorn.

    Needs GITHUB_APP_ID, GITHUB_PRIVATE_KEY (or _PATH) and GITHUB_WEBHOOK_SECRET.
    """
    runtime.settings.require_github_app()
    runtime.db  # noqa: B018 - create the schema once, before gunicorn forks workers
    args = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
            "--workers", str(workers), "--access-logfile", "-", "bot.app:create_app()"]
    click.echo(f"serving on http://{host}:{port} (POST /webhooks/github)", err=True)
    os.execvp(args[0], args)  # noqa: S606 - replace this process with gunicorn


@click.command()
@click.option("--queue", "queues", multiple=True, default=QUEUES, show_default=True,
              help="Queue to listen on; repeat for several.")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.pass_obj
def worker(runtime: Runtime, queues: tuple[str, ...], burst: bool) -> None:
    """Run an rq worker on the mining and rollout queues.

    Start as many as you like, on as many machines as you like: they share Redis
    and the database.
    """
    from bot.worker import run_worker

    run_worker(runtime, queues, burst)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def sweep(runtime: Runtime, as_json: bool) -> None:
    """Enqueue webhook deliveries left pending (Redis was down, or a process died).

    The worker also does this every 30 seconds.
    """
    from handlers import build_router

    try:
        result = webhooks.sweep(runtime, build_router())
    except RedisError as exc:
        raise click.ClickException(f"Redis at {runtime.settings.redis_url} is unreachable: "
                                   f"{exc}") from exc
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{result['processed']} of {result['pending']} pending deliveries enqueued; "
                   f"{result['still_pending']} still pending")


@click.command()
@click.option("--hours", default=72, show_default=True, type=click.IntRange(1, 72),
              help="How far back to look (GitHub keeps deliveries for three days).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def redeliver(runtime: Runtime, hours: int, as_json: bool) -> None:
    """Ask GitHub to redeliver webhook deliveries that never reached us intact.

    Lists the App's recent deliveries; each event with no successful attempt that the
    inbox does not hold is redelivered (at most three times). The worker does this every
    ten minutes.
    """
    from datetime import timedelta

    from github import GithubException

    from bot.redeliver import redeliver_failed

    runtime.settings.require_github_app()
    try:
        report = redeliver_failed(runtime, timedelta(hours=hours))
    except GithubException as exc:
        raise click.ClickException(f"GitHub refused: {exc.status} {exc.data}") from exc
    if as_json:
        click.echo(json.dumps(report.as_json()))
    else:
        click.echo(f"{report.examined} delivery attempts in the last {hours} h; "
                   f"{len(report.failed)} events never arrived intact; "
                   f"{len(report.redelivered)} redelivered, {len(report.given_up)} given up")


COMMANDS = [serve, worker, sweep, redeliver]
