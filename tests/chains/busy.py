"""A generated busy history: every kind of link, forks, ties in time, both merge styles.

Written with `git fast-import` in two rounds, so that PRs of the second round can name the
commit shas of the first ("This reverts commit …").
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

FILES = 12
LINES = 30
REPOSITORY = "busy-org/busy"


@dataclass
class _State:
    rng: random.Random
    contents: dict[str, list[str]]
    titles: dict[int, str] = field(default_factory=dict)
    clock: int = 1_700_000_000
    marks: int = 0
    main: str = ""
    """Where main is: a mark, or the stored branch when a second import resumes it."""


def build_busy_history(path: Path, prs: int = 160, seed: int = 7) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    rng = random.Random(seed)
    state = _State(rng, {f"pkg/mod_{i}.py": [f"V{i}_{j} = {j}" for j in range(LINES)]
                         for i in range(FILES)})
    initial = {name: _text(lines) for name, lines in state.contents.items()}
    first = _commit(state, "refs/heads/main", "Initial import\n", initial, parent=None)
    half = prs // 2
    _import(path, first + [line for n in range(1, half + 1)
                           for line in _pull_request(state, n, {})])
    shas = _shas(path, half)
    state.main = "refs/heads/main^0"  # the second round starts from what the first stored
    _import(path, [line for n in range(half + 1, prs + 1)
                   for line in _pull_request(state, n, shas)])
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "main"], check=True)
    return path


def _shas(path: Path, count: int) -> dict[int, str]:
    """PR number -> the sha of its commit on main, for the first ``count`` PRs."""
    log = subprocess.run(["git", "-C", str(path), "log", "--first-parent", "--reverse",
                          "--format=%H", "main"], capture_output=True, text=True, check=True)
    return dict(enumerate(log.stdout.split()[1:count + 1], start=1))


def _import(path: Path, lines: list[str]) -> None:
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet", "--force"],
                   input="\n".join(lines) + "\n", text=True, check=True)


def _title(state: _State, number: int, shas: dict[int, str]) -> tuple[str, str]:
    rng = state.rng
    earlier = rng.randint(1, number - 1) if number > 1 else None
    roll = rng.random()
    if earlier is None or roll < 0.25:
        return f"Change values batch {number}", ""
    if roll < 0.40:
        return f"fix: repair what broke in values {number}", ""
    if roll < 0.50:
        return f"Follow-up to #{earlier}: more values", ""
    if roll < 0.58:
        part = rng.randint(1, 3)
        return f"Values rework, part {part} of 3", ""
    if roll < 0.64:
        return f'Revert "{state.titles[earlier]}"', ""
    if roll < 0.70 and earlier in shas:
        return f"Undo an earlier change {number}", f"This reverts commit {shas[earlier][:10]}."
    if roll < 0.82:
        issue = 9000 + rng.randint(1, 12)
        return f"Values for issue {number}", f"Closes #{issue}"
    if roll < 0.90:
        return f"Touch values {number}", f"See #{9000 + rng.randint(1, 12)} and #{earlier}"
    return f"Docs and values {number}", ""


def _pull_request(state: _State, number: int, shas: dict[int, str]) -> list[str]:
    rng = state.rng
    title, body = _title(state, number, shas)
    state.titles[number] = title
    if rng.random() < 0.85:
        state.clock += 60  # otherwise merged in the same second as the previous PR
    changes: dict[str, str] = {}
    for _ in range(rng.randint(1, 3)):
        module = f"pkg/mod_{rng.randrange(FILES)}.py"
        lines = state.contents[module]
        for _ in range(rng.randint(1, 4)):
            lines[rng.randrange(LINES)] = f"VALUE_{number}_{rng.randrange(1000)} = {number}"
        changes[module] = "\n".join(lines) + "\n"
    if rng.random() < 0.3:
        changes[f"tests/test_{number}.py"] = f"def test_{number}():\n    assert {number}\n"
    if title.startswith("Docs"):
        changes["docs/guide.md"] = f"# Guide\n\nRevised by {number}.\n"
    if rng.random() < 0.4:
        return _merged(state, number, title, body, changes)
    return _commit(state, "refs/heads/main", f"{title} (#{number})\n\n{body}\n", changes,
                   parent=state.main)


def _merged(state: _State, number: int, title: str, body: str,
            changes: dict[str, str]) -> list[str]:
    """A side branch of one or two commits, merged with GitHub's merge message."""
    items = list(changes.items())
    cut = max(1, len(items) // 2)
    lines = _commit(state, "refs/heads/side", f"Work on {number}\n", dict(items[:cut]),
                    parent=state.main)
    if items[cut:]:
        lines += _commit(state, "refs/heads/side", f"More work on {number}\n",
                         dict(items[cut:]), parent=f":{state.marks}")
    side = state.marks
    message = f"Merge pull request #{number} from dev/topic-{number}\n\n{title}\n\n{body}\n"
    return lines + _commit(state, "refs/heads/main", message, changes, parent=state.main,
                           merge=side)


def _commit(state: _State, ref: str, message: str, changes: dict[str, str],
            parent: str | None, merge: int | None = None) -> list[str]:
    state.marks += 1
    data = message.encode()
    lines = [f"commit {ref}", f"mark :{state.marks}",
             f"author Dev <dev@example.com> {state.clock} +0000",
             f"committer GitHub <noreply@github.com> {state.clock} +0000",
             f"data {len(data)}", message]
    if parent:
        lines.append(f"from {parent}")
    if merge is not None:
        lines.append(f"merge :{merge}")
    for path, text in changes.items():
        lines += [f"M 100644 inline {path}", f"data {len(text.encode())}", text]
    if ref == "refs/heads/main":
        state.main = f":{state.marks}"
    return lines


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"
