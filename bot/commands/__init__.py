"""Subcommands of `davinci`, one module per area; each exposes COMMANDS."""

from __future__ import annotations

import click

from chains.queries import AmbiguousPrefix


def ambiguous(many: AmbiguousPrefix, noun: str) -> click.ClickException:
    """A prefix that names several ``noun``s: the ones it matches, to pick from."""
    more = "" if len(many.matches) < 20 else "\n  …"
    return click.ClickException(
        f"{many.prefix!r} names {len(many.matches)}{'+' if more else ''} {noun}; give more "
        "of the id:\n  " + "\n  ".join(many.matches) + more)
