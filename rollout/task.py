"""Task synthesis: a chain of merged PRs becomes a long-horizon task.

The task starts from the first PR's base commit. Each stage carries an instruction written
from its PR (never from its patch), the gold patch (code changes), the test patch (test
changes) and the contents the stage's test files must have when its hidden tests run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chains.model import Commit, LinkKind, PullRequest
from rollout.gitdiff import GitError, file_at, split_change
from rollout.instructions import InstructionWriter, TemplateWriter


class TaskError(Exception):
    """The chain cannot become a task (missing commits, nothing to verify); says why."""


@dataclass(frozen=True)
class Stage:
    pr: int
    title: str
    instruction: str
    link_kind: str | None
    """The kind of link from the previous stage's PR; None for the first stage."""
    base_commit: str
    merge_commit: str
    gold_patch: str
    test_patch: str
    gold_files: tuple[str, ...]
    test_files: tuple[str, ...]
    hidden_tests: tuple[tuple[str, str | None], ...]
    """(path, content or None when absent) of every test file the stage's tests need."""
    test_targets: tuple[str, ...]
    """Test files handed to the test runner for this stage."""
    commits: tuple[Commit, ...] = ()
    """The PR's own commits, oldest first (what the replay policy replays)."""


@dataclass(frozen=True)
class Task:
    repository: str
    chain_id: str
    base_commit: str
    objective: str
    stages: tuple[Stage, ...]
    kinds: tuple[str, ...]

    @property
    def prs(self) -> tuple[int, ...]:
        return tuple(stage.pr for stage in self.stages)


def build_task(repo_path: Path, chain_id: str, prs: Sequence[PullRequest],
               kinds: Sequence[LinkKind | str] = (),
               writer: InstructionWriter | None = None) -> Task:
    """Synthesise the task for ``prs`` (in chain order) from the local clone at ``repo_path``."""
    if not prs:
        raise TaskError("a chain needs at least one pull request")
    writer = writer or TemplateWriter()
    kind_names = tuple(str(k) for k in kinds)
    stages: list[Stage] = []
    test_paths: list[str] = []
    for index, pr in enumerate(prs):
        link = kind_names[index - 1] if 0 < index <= len(kind_names) else None
        stages.append(_stage(repo_path, pr, link, writer, test_paths))
    objective = writer.objective(prs)
    return Task(repository=prs[0].repository, chain_id=chain_id,
                base_commit=prs[0].base_commit, objective=objective,
                stages=tuple(stages), kinds=kind_names)


def _stage(repo: Path, pr: PullRequest, link: str | None, writer: InstructionWriter,
           test_paths: list[str]) -> Stage:
    if not pr.base_commit or not pr.merge_commit:
        raise TaskError(f"PR #{pr.number} has no base or merge commit recorded")
    try:
        split = split_change(repo, pr.base_commit, pr.merge_commit)
    except GitError as exc:
        raise TaskError(f"PR #{pr.number}: {exc}") from exc
    if not split.gold_files:
        raise TaskError(f"PR #{pr.number} changes no code outside its tests")
    for path in split.test_files:
        if path not in test_paths:
            test_paths.append(path)
    # Every test file seen so far, as of this PR's merge: later stages keep earlier tests.
    hidden = tuple((path, file_at(repo, pr.merge_commit, path)) for path in test_paths)
    targets = tuple(p for p in split.test_files
                    if p.endswith(".py") and file_at(repo, pr.merge_commit, p) is not None
                    and Path(p).name != "conftest.py")
    instruction = writer.instruction(pr, link, split.gold_patch + split.test_patch)
    return Stage(pr=pr.number, title=pr.title, instruction=instruction, link_kind=link,
                 base_commit=pr.base_commit, merge_commit=pr.merge_commit,
                 gold_patch=split.gold_patch, test_patch=split.test_patch,
                 gold_files=split.gold_files, test_files=split.test_files,
                 hidden_tests=hidden, test_targets=targets, commits=pr.commits)
