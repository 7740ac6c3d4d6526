"""Capped output: keep the first bytes of a stream, count and drop the rest, never buffer it."""

from __future__ import annotations

from sandbox.base import TRUNCATION_MARKER

DEFAULT_CAP = 256 * 1024


class CappedBuffer:
    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.kept = 0
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.cap - self.kept
        if room > 0:
            self.parts.append(chunk[:room])
            self.kept += min(room, len(chunk))
        self.dropped += max(0, len(chunk) - max(room, 0))

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def text(self) -> str:
        body = b"".join(self.parts).decode("utf-8", errors="replace")
        if self.dropped:
            body += TRUNCATION_MARKER.format(dropped=self.dropped)
        return body
