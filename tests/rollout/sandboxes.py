"""The sandbox the rollout tests and benchmark run on.

Until the `sandbox` package ships its backends, the rollout tests use this host-process
work-tree sandbox: a real clone of the fixture repository in a temporary directory, real
git and real pytest, behind the same Sandbox protocol the backends implement.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from sandbox.base import ExecResult, PatchConflict, PathOutsideWorkTree, SandboxError


class WorkTreeSandbox:
    def __init__(self, repo: Path, commit: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="davinci-sandbox-"))
        self.root = (self._dir / "work").resolve()
        self._git("clone", "-q", "--no-checkout", str(repo), str(self.root), cwd=self._dir)
        self.start_commit = commit
        self.reset(commit)

    def _git(self, *args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd or self.root, input=stdin,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SandboxError(f"git {args[0]}: {proc.stderr.strip()}")
        return proc.stdout

    def _resolve(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if target != self.root and self.root not in target.parents:
            raise PathOutsideWorkTree(path)
        return target

    def exec(self, command: str, timeout: float = 60.0) -> ExecResult:
        started = time.perf_counter()
        try:
            proc = subprocess.run(["bash", "-c", command], cwd=self.root, capture_output=True,
                                  text=True, timeout=timeout, check=False,
                                  env={**os.environ, "HOME": str(self._dir)})
        except subprocess.TimeoutExpired:
            return ExecResult(124, "", "", time.perf_counter() - started, timed_out=True)
        return ExecResult(proc.returncode, proc.stdout, proc.stderr,
                          time.perf_counter() - started)

    def read_file(self, path: str) -> str:
        try:
            return self._resolve(path).read_text()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise SandboxError(f"no such file: {path}") from exc

    def write_file(self, path: str, content: str) -> None:
        target = self._resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)

    def list_dir(self, path: str = ".") -> list[str]:
        return sorted(os.listdir(self._resolve(path)))

    def diff(self) -> str:
        self._git("add", "-A")
        return self._git("diff", "--cached", "--binary", self.start_commit)

    def apply_patch(self, patch: str, reverse: bool = False) -> None:
        if not patch.strip():
            return
        try:
            self._git("apply", *(["-R"] if reverse else []), "-", stdin=patch)
        except SandboxError as exc:
            raise PatchConflict(str(exc)) from exc

    def reset(self, commit: str) -> None:
        self._git("checkout", "-q", "-f", commit)
        self._git("clean", "-qfdx")
        self.start_commit = commit

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_sandbox(repo: Path, commit: str) -> WorkTreeSandbox:
    return WorkTreeSandbox(repo, commit)
