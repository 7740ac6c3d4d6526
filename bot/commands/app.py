"""`davinci app register`: create the GitHub App from the manifest."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import click
from werkzeug.serving import make_server

from bot.register import build_manifest, registration_app
from bot.runtime import Runtime


@click.group("app")
def app_group() -> None:
    """Manage the GitHub App registration."""


@app_group.command("register")
@click.option("--webhook-url", required=True,
              help="Public URL GitHub will POST events to, ending in /webhooks/github.")
@click.option("--org", default=None, help="Create the App under this organisation.")
@click.option("--name", default="daVinci-Agency", show_default=True, help="The App's name.")
@click.option("--port", default=3000, show_default=True,
              help="Local port for the browser round trip.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the key and env file (default: DAVINCI_DATA_DIR).")
@click.option("--timeout", default=3600, show_default=True,
              help="Seconds to wait for the browser (GitHub's codes last one hour).")
@click.pass_obj
def register(runtime: Runtime, webhook_url: str, org: str | None, name: str, port: int,
             out_dir: Path | None, timeout: int) -> None:
    """Open a local page that registers the App on GitHub from its manifest, then save
    the App id, private key and webhook secret (files readable only by you)."""
    if not webhook_url.startswith("https://"):
        raise click.BadParameter("GitHub delivers webhooks to https:// URLs only",
                                 param_hint="--webhook-url")
    redirect_url = f"http://localhost:{port}/callback"
    manifest = build_manifest(webhook_url, redirect_url, name)
    flask_app = registration_app(manifest, runtime.settings.github_api_url,
                                 out_dir or runtime.settings.data_dir, org)
    server = make_server("127.0.0.1", port, flask_app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    click.echo(f"Open http://localhost:{port}/ in a browser logged in to GitHub and press "
               "the button.", err=True)
    deadline = time.monotonic() + timeout
    try:
        while flask_app.config["result"] is None:
            if time.monotonic() > deadline:
                raise click.ClickException("no answer from the browser in time; start again")
            time.sleep(0.5)
    finally:
        server.shutdown()
    credentials, env_file = flask_app.config["result"]
    click.echo(f"Created App {credentials.slug or credentials.app_id} "
               f"(id {credentials.app_id}).")
    click.echo(f"Credentials written to {env_file}; load them before `davinci serve`.")
    click.echo(f"Install it on repositories at {credentials.html_url}/installations/new")


COMMANDS = [app_group]
