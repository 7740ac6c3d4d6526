"""Upstream work between two stages: what other PRs merged while the agent worked.

Stage k+1 of a chain starts where the agent left stage k plus every change merged between
PR k's merge and PR k+1's base. Those changes arrive as files (never as git objects, so the
sandbox still holds no history): a file the agent did not touch takes the upstream version
through a binary-safe patch; a file both changed is merged three ways (base: PR k's merge),
and on a conflict the upstream version wins. The agent is told which files changed.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rollout.gitdiff import changed_paths, diff_paths, file_at
from sandbox.base import Sandbox, SandboxError
from sandbox.tree import tree_entries

LISTED = 30
"""Files named in the note to the agent; the rest are counted."""


@dataclass(frozen=True)
class UpstreamUpdate:
    since: str
    """PR k's merge commit."""
    until: str
    """PR k+1's base commit."""
    files: tuple[str, ...]
    """Every file the upstream changes touched."""
    merged: tuple[str, ...]
    """Files the agent had changed too, merged three ways."""
    conflicts: tuple[str, ...]
    """Of those, the files where upstream's version replaced the agent's."""

    def note(self) -> str:
        """What the agent is told, or "" when nothing changed."""
        if not self.files:
            return ""
        shown = ", ".join(self.files[:LISTED])
        more = f" and {len(self.files) - LISTED} more" if len(self.files) > LISTED else ""
        text = (f"Meanwhile other changes were merged upstream and are now in your work tree; "
                f"they changed {len(self.files)} file(s): {shown}{more}.")
        if self.conflicts:
            text += (" These conflicted with your changes and now hold the upstream version: "
                     + ", ".join(self.conflicts) + ".")
        return text + "\n\n"

    def to_dict(self) -> dict[str, object]:
        return {"since": self.since, "until": self.until, "files": list(self.files),
                "merged": list(self.merged), "conflicts": list(self.conflicts)}


def merge_upstream(sandbox: Sandbox, repo: Path, since: str, until: str) -> UpstreamUpdate:
    """Bring the changes from ``since`` to ``until`` of ``repo`` into the sandbox's tree."""
    files = changed_paths(repo, since, until) if since != until else []
    if not files:
        return UpstreamUpdate(since, until, (), (), ())
    sandbox.end_processes()
    untouched, touched = _partition(sandbox, repo, since, files)
    sandbox.apply_patch(diff_paths(repo, since, until, untouched))
    conflicts = [path for path in touched if not _merge_file(sandbox, repo, since, until, path)]
    return UpstreamUpdate(since, until, tuple(files), tuple(touched), tuple(conflicts))


def _partition(sandbox: Sandbox, repo: Path, since: str,
               files: list[str]) -> tuple[list[str], list[str]]:
    """Files the agent left as they were at ``since``, and files it changed."""
    blobs = {path: sha for _, _, sha, path in tree_entries(repo, since, *files)}
    quoted = " ".join(shlex.quote(p) for p in files)
    result = sandbox.exec(f'for f in {quoted}; do if [ -f "$f" ] && [ ! -L "$f" ]; then '
                          'git hash-object --no-filters -- "$f"; else echo -; fi; done',
                          timeout=120)
    hashes = result.stdout.split()
    if not result.ok or len(hashes) != len(files):
        raise SandboxError(f"cannot read the work tree: {result.stderr.strip()[-300:]}")
    untouched = [p for p, h in zip(files, hashes, strict=True) if blobs.get(p, "-") == h]
    return untouched, [p for p in files if p not in untouched]


def _merge_file(sandbox: Sandbox, repo: Path, since: str, until: str, path: str) -> bool:
    """Merge one file three ways into the sandbox; False when upstream's version won."""
    base, theirs = file_at(repo, since, path), file_at(repo, until, path)
    try:
        ours: str | None = sandbox.read_file(path)
    except SandboxError:
        ours = None
    merged = _three_way(ours, base, theirs) if None not in (ours, base, theirs) else None
    result = merged if merged is not None else theirs
    if result is None:
        sandbox.exec(f"rm -rf -- {shlex.quote(path)}", timeout=30)
    else:
        sandbox.write_file(path, result)
    return merged is not None


def _three_way(ours: str | None, base: str | None, theirs: str | None) -> str | None:
    """`git merge-file` of the three texts; None on a conflict."""
    with tempfile.TemporaryDirectory(prefix="davinci-merge-") as scratch:
        paths = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(scratch) / name
            path.write_bytes((text or "").encode("utf-8", "surrogateescape"))
            paths.append(str(path))
        proc = subprocess.run(["git", "merge-file", "-p", "-q", *paths], capture_output=True,
                              check=False)  # bytes: CRLF files stay CRLF
    return proc.stdout.decode("utf-8", "surrogateescape") if proc.returncode == 0 else None
