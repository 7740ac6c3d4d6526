"""A shard file written once, straight to disk, with its size and BLAKE3 digest.

An export writes gigabytes it will not read again. Through the page cache, each byte is
copied into a cache page that is then written back and synced: for 70 MB on a test machine,
21 ms of processor time, against 15 ms written by direct I/O (the copy into the buffers
included), in the same wall time. Here the bytes
are gathered into page-aligned buffers of `CHUNK` bytes that the disk reads by itself
(`O_DIRECT`), `DEPTH` of them in flight while the next is filled, and each buffer is hashed on
a thread of its own while it is written. Where the file system refuses direct I/O (tmpfs
before Linux 6.6, some network and FUSE file systems, systems without `O_DIRECT`), the same
buffers go through the page cache, synced every `SYNC_BYTES`, so that little is left to sync
at the end.

The digest is BLAKE3 (`b3sum FILE` checks it): sha256 of every byte an export writes took two
and a half times as long as writing them, more than an export may take in all.

The last bytes of a file rarely fill a block: they are written through the page cache, once
the direct writes are done. The file is synced (fsync) before :meth:`ShardFile.close` returns
its digest, so a manifest never names a shard that a crash of the machine could leave empty.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import blake3

ALIGN = 4096
"""Direct I/O's alignment of buffers, lengths and offsets: a page, which covers disks of 512
and 4096-byte blocks."""
CHUNK = 4 << 20
"""Bytes per write. 4 MiB with two in flight wrote 70 MB in 42 ms on a test machine, as fast
as the page cache and its sync (47–50 ms) with a third of the processor time; 8 MiB with one
in flight took 52 ms."""
DEPTH = 2
"""Writes in flight at once."""
SYNC_BYTES = 8 << 20
"""Through the page cache, the file is synced each time this much more is written: syncing a
64 MiB shard once its last byte was written took a fifth of an export."""
_DIRECT = getattr(os, "O_DIRECT", 0)
_SPARE = 2 * (DEPTH + 1)
"""Buffers kept for the next file once one is closed (two files are open at once in an export
with a test split): a fresh buffer is faulted in page by page. With each file mapping its own,
an export of 200 trajectories took 4,000 to 6,000 page faults and 30 to 45 ms of system time,
against a few dozen faults and 10 to 12 ms."""
_spare: list[mmap.mmap] = []
_spare_lock = threading.Lock()


def _take_buffer() -> mmap.mmap:
    with _spare_lock:
        if _spare:
            return _spare.pop()
    return mmap.mmap(-1, CHUNK)


def _give_back(memory: mmap.mmap) -> None:
    with _spare_lock:
        if len(_spare) < _SPARE:
            _spare.append(memory)


@dataclass
class _Buffer:
    """A page-aligned buffer, and what is being done with its bytes."""

    memory: mmap.mmap
    pending: tuple[Future[object], ...] = ()

    def wait(self) -> None:
        """Until its bytes are hashed and written; a failed write is raised here."""
        pending, self.pending = self.pending, ()
        for future in pending:
            future.result()


class ShardFile:
    """A new file at ``path`` (replaced if there), written by :meth:`write` in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags | _DIRECT, 0o644)
            self.direct = bool(_DIRECT)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._fd = os.open(path, flags, 0o644)  # the file system takes no direct I/O
            self.direct = False
        self._blake3 = blake3.blake3()
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blake3")
        self._io = ThreadPoolExecutor(max_workers=DEPTH, thread_name_prefix="shard-write")
        self._mode = threading.Lock()  # around leaving direct I/O
        self._buffers = deque(_Buffer(_take_buffer()) for _ in range(DEPTH + 1))
        self._filled = 0  # bytes in the current buffer, self._buffers[0]
        self._written = 0  # the file offset of the current buffer
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        """Append ``data``; it may be reused once this returns."""
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            memory = self._buffers[0].memory
            take = min(len(view) - done, CHUNK - self._filled)
            memory[self._filled:self._filled + take] = view[done:done + take]
            self._filled += take
            done += take
            if self._filled == CHUNK:
                self._send(CHUNK)
        self.size += done
        return done

    def _send(self, length: int) -> None:
        """The current buffer's first ``length`` bytes to the hasher and to disk; the next
        buffer, free, becomes current."""
        buffer = self._buffers.popleft()
        view = memoryview(buffer.memory)[:length]
        buffer.pending = (self._hasher.submit(self._blake3.update, view),
                          self._io.submit(self._put, view, self._written))
        self._written += length
        self._filled = 0
        self._buffers.append(buffer)
        self._buffers[0].wait()

    def _put(self, view: memoryview, offset: int) -> None:
        """On a writing thread: ``view`` at ``offset``, whole."""
        while view:
            try:
                count = os.pwrite(self._fd, view, offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self.direct:
                    raise
                self._leave_direct()  # it took the flag, but not these writes
                continue
            view, offset = view[count:], offset + count
            if not self.direct and offset // SYNC_BYTES != (offset - count) // SYNC_BYTES:
                os.fdatasync(self._fd)

    def _leave_direct(self) -> None:
        with self._mode:
            if self.direct:
                flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
                fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~_DIRECT)
                self.direct = False

    def close(self) -> str:
        """Write what is left, sync the file and close it; its BLAKE3 digest (hex). A failed
        write (a full disk) is raised here, and the file is removed."""
        try:
            last, filled = self._buffers[0], self._filled
            tail = filled % ALIGN if self.direct else 0
            if filled - tail:
                self._send(filled - tail)  # whole blocks, still direct
            for buffer in self._buffers:
                buffer.wait()
            if tail:
                self._leave_direct()
                rest = memoryview(last.memory)[filled - tail:filled]
                self._blake3.update(rest)
                self._put(rest, self._written)
            os.fsync(self._fd)
        except BaseException:
            self.abandon()
            raise
        self._release(cancel=False)
        return self._blake3.hexdigest()

    def abandon(self) -> None:
        """Stop writing and remove the file."""
        if self.closed:
            return
        self._release(cancel=True)
        self.path.unlink(missing_ok=True)

    def _release(self, cancel: bool) -> None:
        # Waits for the writes under way: their buffers must outlive them.
        self._hasher.shutdown(wait=True, cancel_futures=cancel)
        self._io.shutdown(wait=True, cancel_futures=cancel)
        os.close(self._fd)
        self.closed = True
        for buffer in self._buffers:
            _give_back(buffer.memory)
