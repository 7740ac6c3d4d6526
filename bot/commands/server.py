"""`davinci serve` and `davinci worker`: the two long-running processes."""

from __future__ import annotations

import os
import sys

import click

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
    from rq import Worker

    runtime.db  # noqa: B018 - create the schema before the first job
    rq_worker = Worker([runtime.queue(name) for name in queues], connection=runtime.redis)
    rq_worker.work(burst=burst, with_scheduler=True)


COMMANDS = [serve, worker]
