"""Corpus append and export throughput for trajectories of the paper's size.

Prints appends per second (SQLite) for trajectories of about 85k tokens and 116 tool calls,
and, for every export format (openai, sharegpt, hf; and hf with zstd-compressed shards), the
records and bytes exported and the export's throughput next to plain file writing of the same
bytes in the same run, synced to disk as an export's files are (and, for comparison, left in
the page cache). The timed exports run in this process after a first one; a one-off export
(`davinci corpus export`) starts with nothing warmed, so each default format is also exported
once in fresh processes, its imports done before the clock starts. Targets: every format's
export, as it is by default, within 2x of the plain write; appends above 50 per second.

    python bench/corpus.py [--records 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.db import Database  # noqa: E402
from corpus.export import FORMATS, ExportResult, export  # noqa: E402
from corpus.store import append  # noqa: E402
from tests.corpus.records import make_record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--one-off", nargs=3, metavar=("DATABASE", "FORMAT", "OUT"),
                        help=argparse.SUPPRESS)  # the child of one_off()
    args = parser.parse_args()
    if args.one_off:
        print(export_once(*args.one_off))
        return
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        db = Database(f"sqlite:///{root / 'bench.db'}")
        db.create_schema()
        records = [make_record(seed, tool_calls=116, observation_chars=2900)
                   for seed in range(args.records)]
        sample = records[0]
        print(f"trajectory size: {sample['tool_calls']} tool calls, ~{sample['tokens']:,} "
              f"tokens, {len(json.dumps(sample)) / 1e6:.2f} MB of JSON")
        timings = []
        started = time.perf_counter()
        for record in records:
            t = time.perf_counter()
            with db.session() as session:
                append(session, record)
            timings.append(time.perf_counter() - t)
        total = time.perf_counter() - started
        print(f"append: {args.records} records in {total:.2f} s, "
              f"{args.records / total:.1f} per second "
              f"(median {statistics.median(timings) * 1000:.1f} ms each; target > 50/s)")
        print(f"{'format':>9} {'records':>8} {'MB':>7} {'export s':>9} {'MB/s':>7} "
              f"{'plain s':>8} {'MB/s':>7} {'ratio':>6} {'cached s':>9} {'ratio':>6}")
        exported: dict[tuple[str, str], float] = {}
        plain: dict[tuple[str, str], float] = {}
        for fmt, compression in [*((fmt, "none") for fmt in FORMATS), ("hf", "zstd")]:
            export_s, plain_s, cached_s, result, size = measure(db, root, fmt, compression)
            exported[(fmt, compression)], plain[(fmt, compression)] = export_s, plain_s
            name = fmt if compression == "none" else f"{fmt}/{compression}"
            print(f"{name:>9} {result.records:>8} {size / 1e6:>7.1f} {export_s:>9.3f} "
                  f"{size / 1e6 / export_s:>7.1f} {plain_s:>8.3f} {size / 1e6 / plain_s:>7.1f} "
                  f"{export_s / plain_s:>5.1f}x {cached_s:>9.3f} {export_s / cached_s:>5.1f}x",
                  flush=True)
        print("export s and plain s: medians of 6, taking turns, each attempt's files removed "
              "once timed; plain = writing the bytes that format's export wrote, as a stream, "
              "and syncing them to disk as the export does (cached: the same write, timed "
              "before the sync); ratio = export/plain time (target within 2x for every "
              "format as it is by default; hf/zstd is the option for smaller shards)")
        jsonl = plain[("openai", "none")]
        for compression in ("none", "zstd"):
            print(f"hf ({compression}) next to the plain write of the same records as JSONL "
                  f"(openai's bytes): {exported[('hf', compression)] / jsonl:.1f}x")
        for fmt in FORMATS:
            fresh = one_off(root, fmt)
            print(f"{fmt} exported once in a fresh process (median of 3): {fresh:.3f} s, "
                  f"{fresh / plain[(fmt, 'none')]:.1f}x the plain write")
        for compression in ("none", "zstd"):
            floor = parquet_floor(db, root, compression)
            print(f"hf ({compression}) next to the Parquet encoder alone (pyarrow writing the "
                  f"same table, held in memory, with the same settings): {floor:.3f} s, export "
                  f"{exported[('hf', compression)] / floor:.1f}x")


def export_once(database: str, fmt: str, out: str) -> float:
    """Seconds of one export in this process, nothing exported before it."""
    import corpus.hf  # noqa: F401  (imported before the clock, as any export's imports are)

    db = Database(database)
    os.sync()
    started = time.perf_counter()
    with db.session() as session:
        export(session, Path(out), fmt)
    return time.perf_counter() - started


def one_off(root: Path, fmt: str) -> float:
    """Median seconds of exporting every record in ``fmt`` once, each time in a new process."""
    runs = []
    for attempt in range(3):
        out = root / f"one-off-{fmt}-{attempt}"
        done = subprocess.run([sys.executable, __file__, "--one-off",
                               f"sqlite:///{root / 'bench.db'}", fmt, str(out)],
                              capture_output=True, text=True, check=True)
        runs.append(float(done.stdout))
        shutil.rmtree(out)
    return statistics.median(runs)


def parquet_floor(db: Database, root: Path, compression: str) -> float:
    """Median seconds of pyarrow encoding the hf export's rows, already an in-memory table,
    to Parquet as the export does (`corpus.hf.parquet`): what any Parquet export costs."""
    import pyarrow.parquet as pq

    from corpus import hf

    with db.session() as session:
        done = export(session, root / "hf-floor", "hf")
    table = pq.read_table([str(path) for path in done.shards])
    runs = []
    for attempt in range(6):
        os.sync()
        t = time.perf_counter()
        pq.write_table(table, root / f"floor-{attempt}.parquet", **hf.parquet(compression))
        runs.append(time.perf_counter() - t)
        (root / f"floor-{attempt}.parquet").unlink()
    shutil.rmtree(root / "hf-floor")
    return statistics.median(runs)


def measure(db: Database, root: Path, fmt: str, compression: str
            ) -> tuple[float, float, float, ExportResult, int]:
    """Median seconds of exporting every record in ``fmt``, of writing the same bytes to
    disk (fsync, as an export does) and of writing them to the page cache only."""
    with db.session() as session:  # the bytes an export writes, for the plain baseline
        first = export(session, root / f"{fmt}-warm", fmt, compression=compression)
    data = b"".join(p.read_bytes() for p in first.shards)
    shutil.rmtree(root / f"{fmt}-warm")
    runs_export: list[float] = []
    runs_plain: list[float] = []
    runs_cached: list[float] = []

    def timed_export(attempt: int) -> None:
        os.sync()  # neither side pays for the other's dirty pages
        t = time.perf_counter()
        with db.session() as session:
            result = export(session, root / f"{fmt}-{attempt}", fmt, compression=compression)
        runs_export.append(time.perf_counter() - t)
        if result.records != first.records:
            raise SystemExit(f"{fmt}: exported {result.records} records, not {first.records}")
        # Each side's files go once timed: with a gigabyte of earlier attempts' files kept,
        # writing new pages got several times slower on a test machine, for whichever side
        # came later, which decided the ratio more than the export did.
        shutil.rmtree(root / f"{fmt}-{attempt}")

    def timed_plain(attempt: int) -> None:
        os.sync()
        t = time.perf_counter()
        with (root / f"plain-{fmt}-{attempt}").open("wb") as handle:
            for start in range(0, len(data), 1 << 20):  # written as a stream, as export does
                handle.write(data[start:start + (1 << 20)])
            cached = time.perf_counter() - t
            handle.flush()
            os.fsync(handle.fileno())  # on disk, as an export's shards are
        runs_plain.append(time.perf_counter() - t)
        runs_cached.append(cached)
        (root / f"plain-{fmt}-{attempt}").unlink()

    for attempt in range(6):  # alternate which goes first
        order = (timed_export, timed_plain) if attempt % 2 else (timed_plain, timed_export)
        for step in order:
            step(attempt)
    return (statistics.median(runs_export), statistics.median(runs_plain),
            statistics.median(runs_cached), first, len(data))


if __name__ == "__main__":
    main()
