"""`davinci doctor`: check every service and credential the configuration names."""

from __future__ import annotations

import json

import click

from bot.doctor import run_checks
from bot.runtime import Runtime

MARKS = {"ok": "ok  ", "failed": "FAIL", "skipped": "--  "}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def doctor(runtime: Runtime, as_json: bool) -> None:
    """Check the database, Redis, the Docker engine and the sandbox base image, the package
    index (through the configured proxy and CA), the LLM endpoint and the GitHub App's
    credentials (each when configured): ok, or what is wrong and what to do.

    Exits with 1 when something required is broken. Creates nothing. `davinci sandbox
    doctor` goes further into the sandboxes themselves.
    """
    checks = run_checks(runtime.settings)
    broken = any(check.broken for check in checks)
    if as_json:
        click.echo(json.dumps({"ok": not broken,
                               "checks": [check.to_json() for check in checks]}, indent=2))
    else:
        for check in checks:
            mark = MARKS[check.status] if check.required or check.status != "failed" \
                else "warn"
            click.echo(f"{mark}  {check.name}: {check.detail}")
            if check.status == "failed":
                click.echo(f"      fix: {check.fix}")
    if broken:
        raise SystemExit(1)


COMMANDS = [doctor]
