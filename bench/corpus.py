"""Corpus append and export throughput for trajectories of the paper's size.

Prints appends per second (SQLite) for trajectories of about 85k tokens and 116 tool calls,
and export throughput in MB/s next to plain file writing of the same bytes in the same run.
Targets: export within 2x of the plain write; appends above 50 per second.

    python bench/corpus.py [--records 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.db import Database  # noqa: E402
from corpus.export import export  # noqa: E402
from corpus.store import append  # noqa: E402
from tests.corpus.records import make_record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200)
    args = parser.parse_args()
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
        print(f"append: {args.records / total:.1f} per second "
              f"(median {statistics.median(timings) * 1000:.1f} ms each; target > 50/s)")
        runs_export, runs_plain = [], []
        with db.session() as session:  # the bytes an export writes, for the plain baseline
            first = export(session, root / "export-warm", "openai")
        data = b"".join(p.read_bytes() for p in first.shards)

        def timed_export(attempt: int) -> None:
            os.sync()  # neither side pays for the other's dirty pages
            t = time.perf_counter()
            with db.session() as session:
                export(session, root / f"export-{attempt}", "openai")
            runs_export.append(time.perf_counter() - t)

        def timed_plain(attempt: int) -> None:
            os.sync()
            t = time.perf_counter()
            with (root / f"plain-{attempt}.jsonl").open("wb") as handle:
                for start in range(0, len(data), 1 << 20):  # written as a stream, as export does
                    handle.write(data[start:start + (1 << 20)])
            runs_plain.append(time.perf_counter() - t)

        for attempt in range(6):  # alternate which goes first
            order = (timed_export, timed_plain) if attempt % 2 else (timed_plain, timed_export)
            for step in order:
                step(attempt)
        size_mb = len(data) / 1e6
        export_s, plain_s = statistics.median(runs_export), statistics.median(runs_plain)
        print(f"export: {size_mb / export_s:.1f} MB/s ({size_mb:.1f} MB, median of 6)")
        print(f"plain write of the same bytes: {size_mb / plain_s:.1f} MB/s")
        print(f"ratio export/plain time: {export_s / plain_s:.1f}x (target within 2x)")


if __name__ == "__main__":
    main()
