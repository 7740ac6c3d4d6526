"""Where a rollout's time goes: a sandbox wrapper that books every call to a category."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self, TypeVar

from sandbox.base import ExecResult, Sandbox

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.category = "sandbox"

    @contextmanager
    def booking(self, category: str) -> Iterator[None]:
        previous, self.category = self.category, category
        try:
            yield
        finally:
            self.category = previous

    @contextmanager
    def measure(self, category: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent[category] += time.perf_counter() - start

    def take(self) -> dict[str, float]:
        spent = {k: round(v, 6) for k, v in self.spent.items()}
        self.spent.clear()
        return spent


class TimedSandbox:
    """Delegates to a sandbox and books the time of each call to the clock's category."""

    def __init__(self, inner: Sandbox, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock

    @property
    def start_commit(self) -> str:
        return self.inner.start_commit

    @start_commit.setter
    def start_commit(self, value: str) -> None:
        self.inner.start_commit = value

    def _timed(self, call: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return call()
        finally:
            self.clock.spent[self.clock.category] += time.perf_counter() - start

    def exec(self, command: str, timeout: float = 60.0, stdin: bytes | None = None,
             output_cap: int | None = None) -> ExecResult:
        return self._timed(lambda: self.inner.exec(command, timeout, stdin, output_cap))

    def end_processes(self) -> int:
        return self._timed(self.inner.end_processes)

    def read_file(self, path: str) -> str:
        return self._timed(lambda: self.inner.read_file(path))

    def write_file(self, path: str, content: str) -> None:
        self._timed(lambda: self.inner.write_file(path, content))

    def list_dir(self, path: str = ".") -> list[str]:
        return self._timed(lambda: self.inner.list_dir(path))

    def diff(self) -> str:
        return self._timed(self.inner.diff)

    def apply_patch(self, patch: str, reverse: bool = False) -> None:
        self._timed(lambda: self.inner.apply_patch(patch, reverse))

    def reset(self, commit: str) -> None:
        self._timed(lambda: self.inner.reset(commit))

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
