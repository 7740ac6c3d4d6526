"""The local backend: a temporary git clone and subprocesses on this machine.

For development machines without Docker. It isolates much less than a container: commands
run as this user with this machine's network and files. What it does enforce: a wall-clock
timeout that kills the command's whole process group, capped output, file methods confined to
the work tree, a private temporary directory, and an address-space limit per command.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from sandbox.base import ExecResult, PatchConflict, PathOutsideWorkTree, SandboxError
from sandbox.output import DEFAULT_CAP, CappedBuffer
from sandbox.processes import MARKER, end_marked
from sandbox.tree import SEED, tree_archive

MEMORY_LIMIT = 2 * 1024**3


class LocalSandbox:
    """A work tree in a temporary directory; see the module docstring for what it isolates."""

    def __init__(self, repo: Path, commit: str, output_cap: int = DEFAULT_CAP,
                 memory_limit: int = MEMORY_LIMIT) -> None:
        self.repo = repo
        self.output_cap = output_cap
        self.memory_limit = memory_limit
        self.marker = uuid.uuid4().hex
        self.dir = Path(tempfile.mkdtemp(prefix="davinci-sandbox-"))
        self.root = self.dir / "work"
        self.home = self.dir / "home"
        self.home.mkdir()
        (self.dir / "tmp").mkdir()
        self.start_commit = commit
        self._seed = ""
        try:
            self.reset(commit)
        except BaseException:
            self.close()
            raise

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                "TMPDIR": str(self.dir / "tmp"), "LANG": "C.UTF-8",
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "agent",
                "GIT_AUTHOR_EMAIL": "agent@sandbox", "GIT_COMMITTER_NAME": "agent",
                "GIT_COMMITTER_EMAIL": "agent@sandbox", "PYTHONDONTWRITEBYTECODE": "1",
                MARKER: self.marker}

    def _limits(self) -> None:
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def exec(self, command: str, timeout: float = 60.0, stdin: bytes | None = None,
             output_cap: int | None = None) -> ExecResult:
        return self._exec(command, timeout, stdin, self.root, output_cap)

    def _exec(self, command: str, timeout: float, stdin: bytes | None, cwd: Path,
              output_cap: int | None = None) -> ExecResult:
        started = time.perf_counter()
        process = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=self._env(),
                                   stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True, preexec_fn=self._limits)
        cap = self.output_cap if output_cap is None else output_cap
        out, err = CappedBuffer(cap), CappedBuffer(cap)
        readers = [threading.Thread(target=_drain, args=(stream, buffer), daemon=True)
                   for stream, buffer in ((process.stdout, out), (process.stderr, err))]
        for reader in readers:
            reader.start()
        if stdin is not None and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(stdin)
            process.stdin.close()
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(process.pid)
            process.wait()
        for reader in readers:
            reader.join(timeout=5)
        code = 124 if timed_out else process.returncode
        return ExecResult(code, out.text(), err.text(), time.perf_counter() - started,
                          timed_out, out.truncated, err.truncated)

    def _path(self, path: str) -> Path:
        root = self.root.resolve()
        target = (root / path).resolve()
        if target != root and root not in target.parents:
            raise PathOutsideWorkTree(f"{path!r} is outside the work tree")
        return target

    def read_file(self, path: str) -> str:
        target = self._path(path)
        if not target.is_file():
            raise SandboxError(f"no such file: {path}")
        return target.read_bytes().decode("utf-8", "replace")  # CRLF stays CRLF

    def write_file(self, path: str, content: str) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode("utf-8", "surrogateescape"))

    def list_dir(self, path: str = ".") -> list[str]:
        target = self._path(path)
        if not target.is_dir():
            raise SandboxError(f"no such directory: {path}")
        return sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir()
                      if p.name != ".git")

    def diff(self) -> str:
        result = self.exec(f"git add -A && git diff --cached --binary {self._seed}", 120)
        if result.exit_code != 0:
            raise SandboxError(f"git diff failed: {result.stderr.strip()}")
        return result.stdout

    def apply_patch(self, patch: str, reverse: bool = False) -> None:
        if not patch.strip():
            return
        args = ["git", "apply", "--whitespace=nowarn", *(["-R"] if reverse else []), "-"]
        result = subprocess.run(args, cwd=self.root, capture_output=True, env=self._env(),
                                input=patch.encode("utf-8", "surrogateescape"))
        if result.returncode != 0:
            error = result.stderr.decode("utf-8", "replace").strip()
            raise PatchConflict(f"patch does not apply: {error}")

    def end_processes(self) -> int:
        """End the processes started by this sandbox's commands (found by their marker)."""
        return end_marked(self.marker)

    def reset(self, commit: str) -> None:
        """A fresh repository holding the files of ``commit`` and nothing else."""
        self.end_processes()
        files = tree_archive(self.repo, commit, owner=os.getuid())
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir()
        result = self._exec(f"tar -xf - && {SEED}", 300, files, self.root)
        if result.exit_code != 0:
            raise SandboxError(f"cannot set up the work tree at {commit}: "
                               f"{result.stderr.strip()}")
        self._seed = result.stdout.strip().splitlines()[-1]
        self.start_commit = commit

    def close(self) -> None:
        self.end_processes()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _drain(stream: IO[bytes] | None, buffer: CappedBuffer) -> None:
    if stream is None:
        return
    for chunk in iter(lambda: stream.read(65536), b""):
        buffer.feed(chunk)
    stream.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
