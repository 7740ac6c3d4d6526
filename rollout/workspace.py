"""Small operations on a sandbox's work tree that rollouts repeat: snapshots of files."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from sandbox.base import Sandbox, SandboxError

Snapshot = tuple[tuple[str, str | None], ...]
"""(path, content or None when the file is absent)."""


def existing(sandbox: Sandbox, paths: Iterable[str]) -> set[str]:
    paths = list(paths)
    if not paths:
        return set()
    quoted = " ".join(shlex.quote(p) for p in paths)
    result = sandbox.exec(f'for f in {quoted}; do [ -f "$f" ] && printf "%s\\n" "$f"; done; true',
                          timeout=30)
    if not result.ok:
        raise SandboxError(f"cannot list files in the sandbox: {result.stderr.strip()}")
    return {line for line in result.stdout.splitlines() if line}


def take(sandbox: Sandbox, paths: Iterable[str]) -> Snapshot:
    paths = list(paths)
    present = existing(sandbox, paths)
    return tuple((p, sandbox.read_file(p) if p in present else None) for p in paths)


def restore(sandbox: Sandbox, snapshot: Snapshot) -> None:
    absent = [path for path, content in snapshot if content is None]
    for path, content in snapshot:
        if content is not None:
            sandbox.write_file(path, content)
    if absent:
        quoted = " ".join(shlex.quote(p) for p in absent)
        result = sandbox.exec(f"rm -f -- {quoted}", timeout=30)
        if not result.ok:
            raise SandboxError(f"cannot remove files in the sandbox: {result.stderr.strip()}")


def tree_id(sandbox: Sandbox) -> str:
    """A git tree id of the work tree as it is now, without touching the index or HEAD."""
    command = ("idx=$(mktemp) && cp \"$(git rev-parse --git-path index)\" \"$idx\" 2>/dev/null; "
               "GIT_INDEX_FILE=\"$idx\" git add -A . >/dev/null && "
               "GIT_INDEX_FILE=\"$idx\" git write-tree; rc=$?; rm -f \"$idx\"; exit $rc")
    result = sandbox.exec(command, timeout=60)
    if not result.ok:
        raise SandboxError(f"cannot snapshot the work tree: {result.stderr.strip()}")
    return result.stdout.strip()


_NOISE = ":(exclude)*.pyc", ":(exclude)**/__pycache__/**", ":(exclude).pytest_cache/**"


def tree_diff(sandbox: Sandbox, before: str, after: str) -> str:
    noise = " ".join(shlex.quote(n) for n in _NOISE)
    result = sandbox.exec(f"git diff --binary --no-renames {before} {after} -- . {noise}",
                          timeout=60)
    if not result.ok:
        raise SandboxError(f"cannot diff the work tree: {result.stderr.strip()}")
    return result.stdout
