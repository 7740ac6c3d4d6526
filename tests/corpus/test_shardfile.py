"""A shard file: the bytes written, in order, whole, with their digest, whether the file
system takes direct I/O or not, and nothing left behind when the disk refuses them."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import blake3
import pytest

from corpus.shardfile import ALIGN, CHUNK, ShardFile

SIZES = [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345]


def _write_in_pieces(file: ShardFile, data: bytes, seed: int) -> None:
    pick = random.Random(seed)
    done = 0
    while done < len(data):
        size = pick.choice([1, 7, ALIGN, 300_000, CHUNK + 5, 2_000_000])
        file.write(data[done:done + size])
        done += size


@pytest.mark.parametrize("size", SIZES)
def test_what_is_written_is_what_the_file_holds_and_its_digest(tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    file = ShardFile(tmp_path / "shard")
    _write_in_pieces(file, data, size)
    digest = file.close()
    assert (tmp_path / "shard").read_bytes() == data
    assert digest == blake3.blake3(data).hexdigest()
    assert file.size == size


def test_a_file_system_without_direct_io_gets_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As tmpfs answered before Linux 6.6: `open` refuses O_DIRECT with EINVAL."""
    real_open = os.open

    def refusing(path: object, flags: int, *args: object) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing)
    data = random.Random(1).randbytes(5 * CHUNK + 77)
    file = ShardFile(tmp_path / "shard")
    assert not file.direct
    _write_in_pieces(file, data, 1)
    assert file.close() == blake3.blake3(data).hexdigest()
    assert (tmp_path / "shard").read_bytes() == data


def test_files_one_after_another_reuse_buffers_without_mixing_bytes(tmp_path: Path) -> None:
    """The buffers a closed file gives back hold its bytes: the next file's must not leak
    them, whatever its length."""
    for number, size in enumerate([CHUNK * 2 + 100, 10, CHUNK + ALIGN, 0, 3 * ALIGN + 1]):
        data = bytes([number + 1]) * size
        file = ShardFile(tmp_path / f"shard-{number}")
        file.write(data)
        assert file.close() == blake3.blake3(data).hexdigest()
        assert (tmp_path / f"shard-{number}").read_bytes() == data


def test_a_disk_that_refuses_the_bytes_raises_and_leaves_no_file(tmp_path: Path) -> None:
    """A real refusal from the kernel (a file size limit, as a full disk would refuse): the
    error reaches the writer, and the partial file is gone."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from corpus.shardfile import ShardFile
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (6 << 20, 6 << 20))
        file = ShardFile(Path({str(tmp_path / "shard")!r}))
        try:
            for _ in range(40):
                file.write(b"x" * 1_000_000)
            file.close()
        except OSError as exc:
            print("refused", exc.errno)
            file.abandon()
            sys.exit(0)
        sys.exit("every byte was taken")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", str(errno.EFBIG)]
    assert not (tmp_path / "shard").exists()
