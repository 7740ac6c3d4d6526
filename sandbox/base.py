"""The Sandbox protocol: the one seam through which rollouts touch repository code."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

TRUNCATION_MARKER = "\n[... output truncated: {dropped} bytes dropped ...]\n"


class SandboxError(Exception):
    """The sandbox could not do what was asked (infrastructure, not the code inside)."""


class SandboxUnavailable(SandboxError):
    """The backend cannot start a sandbox here (no engine, no image)."""


class PatchConflict(SandboxError):
    """A patch does not apply to the work tree; the message says where."""


class PathOutsideWorkTree(SandboxError):
    """A file path escapes the work tree."""


@dataclass(frozen=True)
class ExecResult:
    """What one command did. Output streams are capped; a marker says what was dropped."""

    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@runtime_checkable
class Sandbox(Protocol):
    """A work tree of one repository at one commit, isolated from the host.

    The work tree is a fresh git repository whose one commit holds the files of
    ``start_commit``: no history, refs or objects of the source repository come with it.
    Paths given to the file methods are relative to the work tree; anything that escapes it
    raises :class:`PathOutsideWorkTree`.
    """

    start_commit: str
    """The source repository's commit whose files the work tree started from."""

    def exec(self, command: str, timeout: float = 60.0, stdin: bytes | None = None,
             output_cap: int | None = None) -> ExecResult:
        """Run ``command`` in the work tree; stdout and stderr are each kept up to
        ``output_cap`` bytes (None: the sandbox's own cap), the rest counted and dropped."""
        ...

    def end_processes(self) -> int:
        """End every process that commands in this sandbox started; how many there were."""
        ...

    def read_file(self, path: str) -> str: ...

    def write_file(self, path: str, content: str) -> None: ...

    def list_dir(self, path: str = ".") -> list[str]: ...

    def diff(self) -> str:
        """The work tree against its starting state, as a git patch (untracked files too)."""
        ...

    def apply_patch(self, patch: str, reverse: bool = False) -> None: ...

    def reset(self, commit: str) -> None:
        """End every process, discard the work tree and start afresh from the files of
        ``commit`` of the source repository; it becomes the start commit."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...
