"""Writes that a request hands over instead of making them itself: kept in memory and written
by a background thread in one go, at most every ``every`` seconds.

A request then waits for none of them, and the writes of many requests share one round trip
(one Redis pipeline, one database transaction). The first item after a quiet tick starts the
thread; a tick with nothing to write ends it, so an idle process keeps no thread. What is left
is written when the process exits, and ``flush`` writes it at once (`/metrics` does, so its
figures include this process's latest requests).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

Item = TypeVar("Item")
log = structlog.get_logger()


class Flusher(Generic[Item]):
    def __init__(self, write: Callable[[list[Item]], None], every: float) -> None:
        self.write = write
        self.every = every
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._items: list[Item] = []
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, item: Item) -> None:
        with self._lock:
            self._items.append(item)
            if self._thread is None or self._pid != os.getpid():
                self._start()

    def flush(self) -> None:
        """Write what was added; a second caller waits until the first one's write is done."""
        self._flush(thread=False)

    def _flush(self, thread: bool) -> bool:
        """False when there was nothing to write (and then the calling thread ends)."""
        with self._writing:
            with self._lock:
                items, self._items = self._items, []
                if not items:
                    if thread:
                        self._thread = None
                    return False
            self.write(items)
            return True

    def _start(self) -> None:
        """Start the thread (called with the lock held), in this process (after a fork too)."""
        if self._pid != os.getpid():
            atexit.register(self.flush)
            self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            try:
                if not self._flush(thread=True):
                    return
            except Exception:  # a bug here must not stop the writing for good
                log.exception("flusher.write_failed", write=getattr(self.write, "__name__", ""))
