"""The `davinci` command line. Each area's commands live in `bot/commands/`.

Errors a user can cause (a setting, a service that does not answer, an input) end here in
one or two lines that name the setting or input and the fix (:func:`explain`); `--debug`
shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit

import click
from github import GithubException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from requests import RequestException
from sqlalchemy.exc import InterfaceError, OperationalError

from bot import __version__
from bot.db import DatabaseUnavailable
from bot.doctor import NotReady
from bot.logs import configure_logging
from bot.runtime import Runtime
from bot.settings import Settings, SettingsError, hide_password
from rollout.llm import LLMUnavailable
from sandbox.base import SandboxUnavailable

READ_ONLY = frozenset({
    ("chains", "list"), ("chains", "show"), ("corpus", "stats"), ("corpus", "show"),
    ("corpus", "export"), ("rollouts", "list"), ("rollouts", "show"), ("status", None),
    ("doctor", None),
})
"""Commands that only read: they never create a database or its folder."""
LONG_RUNNING = frozenset({"serve", "worker"})
"""Processes whose log is their output: they log at info unless DAVINCI_LOG_LEVEL says."""
COMMAND = "davinci.command"


def explain(exc: BaseException, settings: Settings | None) -> str | None:
    """One or two lines for an error a user can cause and fix; None for anything else."""
    if isinstance(exc, SettingsError):
        return f"configuration error: {exc}"
    if isinstance(exc, DatabaseUnavailable | SandboxUnavailable | NotReady):
        return str(exc)
    if settings is None:
        return None
    if isinstance(exc, OperationalError | InterfaceError):
        reason = str(exc.orig or exc).strip().splitlines()[0]
        where = hide_password(settings.effective_database_url)
        return (f"the database at {where} cannot be used: {reason}\n"
                "start it, or set DATABASE_URL (or DAVINCI_DATA_DIR) to one that works")
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return (f"Redis at {hide_password(settings.redis_url)} does not answer ({exc})\n"
                "start it, or set REDIS_URL to one that runs")
    if isinstance(exc, LLMUnavailable):
        return (f"the LLM endpoint at {settings.llm_base_url} does not answer ({exc})\n"
                "start it, fix LLM_BASE_URL, or unset LLM_BASE_URL and LLM_MODEL to work "
                "without a model")
    if isinstance(exc, RequestException):
        return _unreachable(exc, settings)
    if isinstance(exc, GithubException):
        return (f"GitHub at {settings.github_api_url} answered {exc.status}: "
                f"{_github_message(exc)}\ncheck GITHUB_APP_ID and the App's private key")
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot use {exc.filename}: {exc.strerror or exc}"
    return None


def _unreachable(exc: RequestException, settings: Settings) -> str:
    url = getattr(exc.request, "url", None) or ""
    host = urlsplit(url).netloc or "a server"
    if url.startswith(settings.github_api_url) or urlsplit(settings.github_api_url).netloc \
            == host:
        return (f"GitHub at {settings.github_api_url} cannot be reached "
                f"({type(exc).__name__})\ncheck the network (HTTPS_PROXY) or GITHUB_API_URL")
    return f"{host} cannot be reached ({type(exc).__name__}); check the network and its URL"


def _github_message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return str(data.get("message") or exc.data or "no message")


class DavinciGroup(click.Group):
    """Knows which command runs (for read-only commands and log levels) and turns the
    errors :func:`explain` knows into its lines: exit code 2 for settings, 1 otherwise."""

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        sub = None
        if isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
            sub = rest[0]
        ctx.meta[COMMAND] = (name, sub)
        return name, command, rest

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            runtime = ctx.obj if isinstance(ctx.obj, Runtime) else None
            message = explain(exc, runtime.settings if runtime else None)
            if message is None or ctx.params.get("debug"):
                raise
            click.echo(message, err=True)
            sys.exit(2 if isinstance(exc, SettingsError) else 1)


@click.group(cls=DavinciGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="davinci")
@click.option("-v", "--verbose", count=True,
              help="Log at info (-vv: debug); logs are warnings and errors otherwise. "
                   "DAVINCI_LOG_LEVEL overrides.")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
@click.pass_context
def main(ctx: click.Context, verbose: int, debug: bool) -> None:
    """daVinci-Agency: turn chains of merged pull requests into verified long-horizon
    training trajectories for coding agents.

    Configuration comes from environment variables (see README.md; `davinci doctor`
    checks it). Commands that report something accept --json and then print one JSON
    document on standard output.
    """
    settings = Settings.from_env()
    command = ctx.meta.get(COMMAND, (None, None))
    level = settings.log_level or ("debug" if verbose > 1 or debug else "info"
                                   if verbose or command[0] in LONG_RUNNING else "warning")
    configure_logging(settings.log_format, level, settings.secrets)
    if level == "warning" and not settings.log_level:
        # A command's retries (urllib3 warns of each one) end in its error, which says it.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    read_only = command in READ_ONLY or (command[0], None) in READ_ONLY
    ctx.obj = Runtime(settings, read_only=read_only)
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from bot.commands import (
        app,
        chains,
        corpus,
        doctor,
        mining,
        rollout,
        rollouts,
        run,
        sandbox,
        server,
    )

    for command in (*server.COMMANDS, *chains.COMMANDS, *mining.COMMANDS, *rollout.COMMANDS,
                    *run.COMMANDS, *corpus.COMMANDS, *sandbox.COMMANDS, *app.COMMANDS,
                    *rollouts.COMMANDS, *doctor.COMMANDS):
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
