"""Offline mining of generated histories of 100, 1,000 and 10,000 PRs.

For each size: PRs per second, peak memory, the time `git log` alone needs to read the same
history (the floor) and the ratio; and the cost of attaching one more PR, which must stay flat
(within 1.5x from the smallest to the largest history). Every tenth PR is a fix of an earlier
one, so blame runs as it would on a real repository.

    python bench/mining.py [--sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.db import Database  # noqa: E402
from chains.gitsource import GitBlame, GitHistory  # noqa: E402
from chains.mining import attach_pull_request  # noqa: E402

FILES = 50


def generate(path: Path, prs: int) -> None:
    """A squash-merged history written with git fast-import (seconds, not minutes)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    lines: list[str] = []
    contents = {f"src/module_{i}.py": [f"VALUE_{i}_{j} = {j}" for j in range(40)]
                for i in range(FILES)}
    stamp = 1_700_000_000
    for number in range(1, prs + 1):
        module = f"src/module_{number % FILES}.py"
        body = contents[module]
        line = (number * 7) % len(body)
        body[line] = f"VALUE_{number} = {number}  # changed by #{number}"
        is_fix = number % 10 == 0
        title = (f"fix: repair value {number} ({'#'}{number})" if is_fix
                 else f"Change value {number} (#{number})")
        if number % 3 == 0 and number > 3:
            title = f"Follow-up to #{number - 3}: value {number} (#{number})"
        message = title + "\n"
        data = "\n".join(body) + "\n"
        test = f"def test_{number}():\n    assert {number}\n"
        lines += ["commit refs/heads/main", f"mark :{number}",
                  f"author Dev <dev@example.com> {stamp + number * 60} +0000",
                  f"committer GitHub <noreply@github.com> {stamp + number * 60} +0000",
                  f"data {len(message.encode())}", message]
        if number > 1:
            lines.append(f"from :{number - 1}")
        lines += [f"M 100644 inline {module}", f"data {len(data.encode())}", data]
        if number % 5 == 0:
            lines += [f"M 100644 inline tests/test_{number}.py", f"data {len(test)}", test]
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet"],
                   input="\n".join(lines) + "\n", text=True, check=True)
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "main"], check=True)


def mine(path: Path, db: Database, blame: bool, prs_list: list) -> float:  # type: ignore[type-arg]
    started = time.perf_counter()
    source = GitBlame(path) if blame else None
    for pr in prs_list:
        with db.session() as session:
            attach_pull_request(session, pr, source)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    one_more: dict[int, float] = {}
    print(f"{'PRs':>6} {'read s':>8} {'git log s':>9} {'ratio':>6} {'mine s':>8} "
          f"{'PRs/s':>8} {'+blame s':>9} {'one more ms':>12} {'peak MB':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            repo = Path(scratch) / "repo"
            generate(repo, size + 1)
            t = time.perf_counter()
            subprocess.run(["git", "-C", str(repo), "log", "--first-parent", "-p", "-U0",
                            "--format=%H%P%ct%an%B", "main"], stdout=subprocess.DEVNULL,
                           check=True)
            floor = time.perf_counter() - t
            t = time.perf_counter()
            prs = GitHistory(repo).pull_requests()
            read = time.perf_counter() - t
            last, prs = prs[-1], prs[:-1]
            db = Database(f"sqlite:///{Path(scratch) / 'plain.db'}")
            db.create_schema()
            plain = mine(repo, db, False, prs)
            db_blame = Database(f"sqlite:///{Path(scratch) / 'blame.db'}")
            db_blame.create_schema()
            with_blame = mine(repo, db_blame, True, prs)
            runs = []
            for _ in range(9):
                t = time.perf_counter()
                with db_blame.session() as session:
                    attach_pull_request(session, last, GitBlame(repo))
                    runs.append(time.perf_counter() - t)
                    session.rollback()
            one_more[size] = sorted(runs)[4]  # the median of 9
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{size:>6} {read:>8.2f} {floor:>9.2f} {read / floor:>6.1f} {plain:>8.2f} "
                  f"{size / (read + plain):>8.0f} {with_blame:>9.2f} "
                  f"{one_more[size] * 1000:>12.1f} {peak:>8.0f}")
    sizes = sorted(one_more)
    print(f"attach one more PR: {one_more[sizes[-1]] / one_more[sizes[0]]:.2f}x from "
          f"{sizes[0]} to {sizes[-1]} PRs (target within 1.5x)")
    print("targets: reading within 5x of the git log floor; 1,000 PRs with blame under 60 s")
    os.environ.pop("GIT_DIR", None)


if __name__ == "__main__":
    main()
