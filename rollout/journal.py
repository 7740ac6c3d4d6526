"""A rollout's messages on disk as they happen, so a worker that dies loses nothing.

One JSON line per message, appended after every step (before old observations are condensed
to fit the window, so the journal holds them whole). Once the rollout's verdict is stored the
journal is removed; one left behind belongs to a rollout that did not finish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class FileJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def __call__(self, messages: list[dict[str, Any]]) -> None:
        self._file.write("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages))
        self._file.flush()  # in the OS's hands: a killed process loses none of it

    def finish(self) -> None:
        """The rollout is stored: close and remove the journal."""
        self._file.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self._file.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The messages of a journal; a line cut off by a crash ends the list."""
    messages = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            messages.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return messages
