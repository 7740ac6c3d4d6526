"""Patches from a local clone: split a PR's change into gold (code) and test parts."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from chains.diff import parse_diff
from chains.paths import is_test_path


class GitError(Exception):
    """A git command on the local clone failed; the message carries git's own words."""


def git(repo: Path, *args: str) -> str:
    """git's output as it is: no newline translation (a CRLF file's patch keeps its CRs) and
    bytes that are not UTF-8 kept as surrogates, so `encode("utf-8", "surrogateescape")`
    gives back exactly what git wrote."""
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if proc.returncode != 0:
        error = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()
        raise GitError(f"git {' '.join(args)}: {error}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def changed_paths(repo: Path, base: str, head: str) -> list[str]:
    out = git(repo, "diff", "--name-only", "--no-renames", base, head)
    return [line for line in out.splitlines() if line]


def diff_paths(repo: Path, base: str, head: str, paths: list[str]) -> str:
    """A binary-safe git patch from ``base`` to ``head`` restricted to ``paths``."""
    if not paths:
        return ""
    return git(repo, "diff", "--binary", "--no-renames", base, head, "--", *paths)


def file_at(repo: Path, commit: str, path: str) -> str | None:
    """The text of ``path`` at ``commit``; None when the file does not exist there."""
    proc = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class SplitPatch:
    gold_patch: str
    test_patch: str
    gold_files: tuple[str, ...]
    test_files: tuple[str, ...]


def split_change(repo: Path, base: str, head: str) -> SplitPatch:
    paths = changed_paths(repo, base, head)
    tests = [p for p in paths if is_test_path(p)]
    code = [p for p in paths if not is_test_path(p)]
    return SplitPatch(gold_patch=diff_paths(repo, base, head, code),
                      test_patch=diff_paths(repo, base, head, tests),
                      gold_files=tuple(code), test_files=tuple(tests))


@dataclass(frozen=True)
class PatchLines:
    """What a patch changes: files, and the added and removed lines (content, not position)."""

    files: frozenset[str]
    added: tuple[str, ...]
    removed: tuple[str, ...]


def parse_patch(patch: str, include_tests: bool = False) -> PatchLines:
    diffs = [d for d in parse_diff(patch, with_lines=True)
             if include_tests or not is_test_path(d.path)]
    return PatchLines(frozenset(d.path for d in diffs),
                      tuple(line for d in diffs for line in d.added_lines),
                      tuple(line for d in diffs for line in d.removed_lines))


def added_code_lines(patch: str, min_length: int = 12) -> list[str]:
    """Added lines worth checking an instruction against: long enough to be distinctive."""
    lines = [line.strip() for line in parse_patch(patch, include_tests=True).added]
    return [line for line in lines if len(line) >= min_length and not line.startswith("#")]
