"""`.github/davinci.yml`: a repository's settings, with defaults and clear errors."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from chains.gitsource import git

CONFIG_PATH = ".github/davinci.yml"


@dataclass(frozen=True)
class RepoConfig:
    enabled: bool = True
    """False turns the App off for this repository."""
    min_chain_length: int = 2
    """A chain needs at least this many PRs to be eligible for a rollout."""
    max_chain_length: int = 8
    """Chains never grow longer than this."""
    paths_ignore: tuple[str, ...] = ()
    """Glob patterns of files that do not count for links (generated files, lock files)."""
    install: str | None = None
    """Command that installs the project's dependencies in the sandbox image."""
    test: str | None = None
    """Command that runs the tests (default: pytest)."""
    comment: bool = True
    """False turns the status comment off."""
    comment_unchained: bool = False
    """True also comments on merged PRs that joined no chain ("has not joined a chain yet");
    by default only PRs in a chain, excluded ones and broken configurations get a comment."""
    check_run: bool = False
    """True adds a check run with the same summary."""
    rollout: tuple[tuple[str, int | float], ...] = ()
    """Rollout limits for this repository (`rollout:` with any of ROLLOUT_LIMITS)."""


ROLLOUT_LIMITS: dict[str, tuple[type, float, float]] = {
    "max_steps": (int, 1, 100_000), "max_attempts": (int, 1, 20),
    "max_tokens": (int, 1_000, 100_000_000), "threshold": (float, 0.0, 1.0)}
"""The rollout limits a repository (`.github/davinci.yml`), the environment (`DAVINCI_*`)
and `davinci rollout` may set: kind, lowest and highest value. The fields of
`rollout.config.RolloutConfig` of the same names."""


def rollout_limit(name: str, value: object) -> int | float:
    """``value`` checked as the rollout limit ``name``; ValueError says what is wrong."""
    kind, low, high = ROLLOUT_LIMITS[name]
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            raise ValueError(f"`{name}` must be a {'whole ' if kind is int else ''}number, "
                             f"not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or (kind is int and not float(value).is_integer()):
        raise ValueError(f"`{name}` must be a {'whole ' if kind is int else ''}number")
    if not low <= value <= high:
        raise ValueError(f"`{name}` must be from {low:g} to {high:g}, not {value}")
    return kind(value)


@dataclass(frozen=True)
class ParsedConfig:
    config: RepoConfig
    problem: str | None = None
    """Why the file could not be used (defaults then apply), with its line where known."""


def parse_config(text: str | None) -> ParsedConfig:
    """Parse the file's text; any problem gives the defaults plus a message naming it."""
    if text is None or not text.strip():
        return ParsedConfig(RepoConfig())
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return ParsedConfig(RepoConfig(), f"{CONFIG_PATH} {where}{problem}")
    if data is None:
        return ParsedConfig(RepoConfig())
    if not isinstance(data, dict):
        return ParsedConfig(RepoConfig(), f"{CONFIG_PATH} must be a mapping of settings")
    try:
        return ParsedConfig(_build(data))
    except ValueError as exc:
        return ParsedConfig(RepoConfig(), f"{CONFIG_PATH}: {exc}")


def _build(data: dict[str, Any]) -> RepoConfig:
    known = {f.name for f in fields(RepoConfig)}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ValueError(f"unknown setting {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name in ("enabled", "comment", "comment_unchained", "check_run"):
        if name in data:
            if not isinstance(data[name], bool):
                raise ValueError(f"`{name}` must be true or false")
            values[name] = data[name]
    for name in ("min_chain_length", "max_chain_length"):
        if name in data:
            value = data[name]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
                raise ValueError(f"`{name}` must be a whole number from 1 to 64")
            values[name] = value
    for name in ("install", "test"):
        if name in data and data[name] is not None:
            if not isinstance(data[name], str):
                raise ValueError(f"`{name}` must be a command line (text)")
            values[name] = data[name]
    if "rollout" in data:
        limits = data["rollout"]
        if not isinstance(limits, dict) or set(map(str, limits)) - set(ROLLOUT_LIMITS):
            raise ValueError("`rollout` must be a mapping of "
                             + ", ".join(sorted(ROLLOUT_LIMITS)))
        values["rollout"] = tuple((str(k), rollout_limit(str(k), v)) for k, v in limits.items())
    if "paths_ignore" in data:
        patterns = data["paths_ignore"]
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ValueError("`paths_ignore` must be a list of glob patterns")
        values["paths_ignore"] = tuple(patterns)
    config = RepoConfig(**values)
    if config.min_chain_length > config.max_chain_length:
        raise ValueError("`min_chain_length` is larger than `max_chain_length`")
    return config


def config_at(repo: Path, commit: str) -> ParsedConfig:
    """The configuration as `.github/davinci.yml` reads at ``commit`` of a local repository
    (the defaults when the file is not there)."""
    return parse_config(git(repo, "show", f"{commit}:{CONFIG_PATH}", check=False))
