"""The `davinci` command line. Each area's commands live in `bot/commands/`."""

from __future__ import annotations

import sys

import click

from bot import __version__
from bot.logs import configure_logging
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError


class DavinciGroup(click.Group):
    """Turns configuration errors into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=DavinciGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="davinci")
@click.pass_context
def main(ctx: click.Context) -> None:
    """daVinci-Agency: turn chains of merged pull requests into verified long-horizon
    training trajectories for coding agents.

    Configuration comes from environment variables (see README.md). Commands that
    report something accept --json and then print one JSON document on standard output.
    """
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(f"configuration error: {exc}") from exc
    configure_logging(settings.log_format, settings.log_level, settings.secrets)
    ctx.obj = Runtime(settings)
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from bot.commands import app, chains, corpus, mining, rollout, rollouts, run, sandbox, server

    for command in (*server.COMMANDS, *chains.COMMANDS, *mining.COMMANDS, *rollout.COMMANDS,
                    *run.COMMANDS, *corpus.COMMANDS, *sandbox.COMMANDS, *app.COMMANDS,
                    *rollouts.COMMANDS):
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
