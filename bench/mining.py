"""Offline mining of generated histories of 100, 1,000 and 10,000 PRs.

For each size: how long `davinci mine --git`'s path takes to read the history and mine it into
the database (in memory, written in batches) without blame and with it, PRs per second, peak
memory, the time `git log` alone needs to read the same history (the floor) and the ratio of
mining without blame to it; the same history mined PR by PR, one transaction each, as the live
path does; and the cost of attaching one more PR on the live path, which must stay flat (within
1.5x from the smallest to the largest history), with the number of links that PR gets. That
PR is the same probe at every size, so the sizes compare like with like: a fix titled as a
follow-up of a PR three before it, changing only the lines three earlier PRs wrote in a file
no other PR touches (blame finds all three), so it gets the same links from 100 PRs to
10,000 and its cost can only follow the history. Every tenth PR is a fix of an earlier one,
so blame runs as it would on a real repository.

    python bench/mining.py [--sizes 100,1000,10000] [--shape realistic|tiny|both] [--git CLONE]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.db import Database  # noqa: E402
from chains.config import RepoConfig  # noqa: E402
from chains.gitsource import GitBlame, GitHistory  # noqa: E402
from chains.mining import attach_pull_request, mine_history  # noqa: E402
from chains.model import PullRequest  # noqa: E402

SHAPES = ("realistic", "tiny")
PROBE_FILE = "src/probe/records.py"
PROBE_AUTHORS = (3, 6, 9)
"""The probe (the last PR) fixes lines these PRs before it wrote in PROBE_FILE, which no
other PR touches: its links are the same at every size."""


def generate(path: Path, prs: int, shape: str = "realistic") -> None:
    """A squash-merged history written with git fast-import (seconds, not minutes).

    ``realistic``: shaped after pallets/click's history (a PR changes 2.8 files and ~40 lines
    on average; a few files are hot, most are touched rarely; 40% of PRs touch tests; a dozen
    PRs a day). ``tiny``: every PR changes one line of one of 50 files, a minute apart, so
    `git log` has almost nothing to read and every PR overlaps the 20 before it (the worst
    case for mining relative to the floor). In both, the last PR is the probe (see PROBE).
    """
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    rng = random.Random(prs)
    tiny = shape == "tiny"
    modules = 50 if tiny else 300
    length = 40 if tiny else 80
    contents = {_module(i, tiny): [f"VALUE_{i}_{j} = {j}" for j in range(length)]
                for i in range(modules)}
    weights = [1 / (i + 1) for i in range(modules)]
    written: dict[int, tuple[str, int, int]] = {}
    """PR -> (file, first line, last line) of its first change, for fixes to aim at."""
    lines: list[str] = []
    probe = [""] * (len(PROBE_AUTHORS) * 10)
    for number in range(1, prs + 1):
        changes: dict[str, str] = {}
        if number == prs:  # the probe: it repairs what its three predecessors wrote
            for line in range(len(probe)):
                probe[line] = f"PROBE_{line} = 0  # repaired by #{number}"
            title = f"fix: follow-up to #{number - PROBE_AUTHORS[0]} (#{number})"
            stamp = 1_700_000_000 + number * (60 if tiny else 7200)
            lines += _commit(number, title + "\n", stamp, {PROBE_FILE: "\n".join(probe) + "\n"})
            continue
        if prs - number in PROBE_AUTHORS:  # ten lines of the probe's file each
            first = PROBE_AUTHORS.index(prs - number) * 10
            for line in range(first, first + 10):
                probe[line] = f"PROBE_{line} = {number}  # written by #{number}"
            changes[PROBE_FILE] = "\n".join(probe) + "\n"
        if tiny:
            picks = [(_module(number % modules, tiny), (number * 7) % length, 1)]
        else:
            count = rng.choices([1, 2, 3, 4, 6], weights=[35, 25, 15, 15, 10])[0]
            picks = [(_module(i, tiny), rng.randrange(length), rng.randint(1, 15))
                     for i in rng.choices(range(modules), weights=weights, k=count)]
        is_fix = number % 10 == 0
        if is_fix and number - 3 in written:
            picks[0] = written[number - 3]  # repair what an earlier PR wrote (blame finds it)
        for module, first, size in picks:
            body = contents[module]
            for line in range(first, min(first + size, length)):
                body[line] = f"VALUE_{number}_{line} = {number}  # changed by #{number}"
            changes[module] = "\n".join(body) + "\n"
        written[number] = picks[0]
        if (number % 5 == 0) if tiny else rng.random() < 0.4:
            changes[f"tests/test_{number % 97}.py"] = f"def test_{number}():\n    assert 1\n"
        title = (f"fix: repair value {number} (#{number})" if is_fix
                 else f"Change value {number} (#{number})")
        if number % 3 == 0 and number > 3:
            title = f"Follow-up to #{number - 3}: value {number} (#{number})"
        stamp = 1_700_000_000 + number * (60 if tiny else 7200)
        lines += _commit(number, title + "\n", stamp, changes)
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet"],
                   input="\n".join(lines) + "\n", text=True, check=True)
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "main"], check=True)


def _module(index: int, tiny: bool) -> str:
    return f"src/module_{index}.py" if tiny else f"src/pkg_{index % 15}/module_{index}.py"


def _commit(number: int, message: str, stamp: int, changes: dict[str, str]) -> list[str]:
    lines = ["commit refs/heads/main", f"mark :{number}",
             f"author Dev <dev@example.com> {stamp} +0000",
             f"committer GitHub <noreply@github.com> {stamp} +0000",
             f"data {len(message.encode())}", message]
    if number > 1:
        lines.append(f"from :{number - 1}")
    for name, data in changes.items():
        lines += [f"M 100644 inline {name}", f"data {len(data.encode())}", data]
    return lines


def one_by_one(db: Database, prs: list[PullRequest]) -> float:
    """The live path: one transaction per PR."""
    started = time.perf_counter()
    for pr in prs:
        with db.session() as session:
            attach_pull_request(session, pr, None)
    return time.perf_counter() - started


def offline(path: Path, db: Database, blame: bool) -> float:
    """`davinci mine --git`: read the history, mine it in memory, write it in batches."""
    started = time.perf_counter()
    history = GitHistory(path)
    prs = history.pull_requests()[:-1]  # the last one is left for "one more"
    mine_history(db.session, history.repository, prs, GitBlame(path) if blame else None,
                 RepoConfig())
    return time.perf_counter() - started


def database(scratch: Path, name: str) -> Database:
    db = Database(f"sqlite:///{scratch / name}.db")
    db.create_schema()
    return db


def median(runs: list[float]) -> float:
    return sorted(runs)[len(runs) // 2]


HEADER = (f"{'history':>16} {'PRs':>6} {'git log s':>9} {'read s':>7} {'mine s':>7} "
          f"{'ratio':>6} {'PRs/s':>7} {'+blame s':>9} {'by PR s':>8} {'one more ms':>12} "
          f"{'its links':>9} {'peak MB':>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--shape", choices=(*SHAPES, "both"), default="both",
                        help="the generated histories' shape (see generate)")
    parser.add_argument("--git", type=Path, default=None,
                        help="also measure a real clone (its HEAD), e.g. of pallets/click")
    args = parser.parse_args()
    print(HEADER)
    for shape in SHAPES if args.shape == "both" else (args.shape,):
        one_more: dict[int, float] = {}
        for size in (int(s) for s in args.sizes.split(",")):
            with tempfile.TemporaryDirectory() as scratch:
                repo = Path(scratch) / "repo"
                generate(repo, size + 1, shape)
                one_more[size] = measure(repo, shape, Path(scratch), runs=3 if size <= 1000 else 1)
        sizes = sorted(one_more)
        print(f"{shape}: attach one more PR {one_more[sizes[-1]] / one_more[sizes[0]]:.2f}x "
              f"from {sizes[0]} to {sizes[-1]} PRs (target within 1.5x)")
    if args.git:
        with tempfile.TemporaryDirectory() as scratch:
            measure(args.git.resolve(), args.git.resolve().name, Path(scratch), runs=3)
    print("targets: 'ratio' = mining without blame ('mine s': read, link, store) over the "
          "git log floor, within 5x; 1,000 PRs with blame ('+blame s') under 60 s")
    os.environ.pop("GIT_DIR", None)


def measure(repo: Path, label: str, scratch: Path, runs: int) -> float:
    """Print one row for ``repo``; returns the median cost of attaching one more PR."""
    floor = median([git_log(repo) for _ in range(runs)])
    plain = median([offline(repo, database(scratch, f"plain{i}"), False) for i in range(runs)])
    read = median([timed(GitHistory(repo).pull_requests) for _ in range(runs)])
    with_blame = offline(repo, database(scratch, "blame"), True)
    prs = GitHistory(repo).pull_requests()
    last, prs = prs[-1], prs[:-1]
    by_pr = one_by_one(database(scratch, "live"), prs)
    blamed = database(scratch, "blame")
    attach_runs, links = [], 0
    for _ in range(21):
        started = time.perf_counter()
        with blamed.session() as session:
            links = len(attach_pull_request(session, last, GitBlame(repo)).links)
            attach_runs.append(time.perf_counter() - started)
            session.rollback()
    one_more = median(attach_runs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:>16} {len(prs):>6} {floor:>9.3f} {read:>7.3f} {plain:>7.3f} "
          f"{plain / floor:>6.1f} {len(prs) / plain:>7.0f} {with_blame:>9.2f} {by_pr:>8.2f} "
          f"{one_more * 1000:>12.1f} {links:>9} {peak:>8.0f}", flush=True)
    return one_more


def git_log(repo: Path) -> float:
    """The floor: git alone reading the same history with its diffs."""
    return timed(lambda: subprocess.run(
        ["git", "-C", str(repo), "log", "--first-parent", "-p", "-U0",
         "--format=%H%P%ct%an%B", "HEAD"], stdout=subprocess.DEVNULL, check=True))


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
