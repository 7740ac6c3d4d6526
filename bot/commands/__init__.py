"""Subcommands of `davinci`, one module per area; each exposes COMMANDS."""
