"""Task synthesis: a chain of merged PRs becomes a long-horizon task.

The task starts from the first PR's base commit. Each stage carries an instruction written
from its PR (never from its patch), the gold patch (code changes), the test patch (test
changes), and what its hidden run needs from the reference (the PR's merge): the test files
of this and every earlier stage, and the test infrastructure. A PR that changes no code
outside its tests (tests or docs only) is left out of the task, with the reason recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chains.model import Commit, LinkKind, PullRequest
from rollout.gitdiff import GitError, SplitPatch, file_at, split_change
from rollout.instructions import InstructionWriter, TemplateWriter
from sandbox.testinfra import is_test_infrastructure
from sandbox.testrun import DEFAULT_RUNNER, HiddenTests, ReferenceFile, reference_harness


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
    """Test files handed to the test runner: this stage's and, as regression tests, every
    earlier stage's that still exists at this PR's merge."""
    commits: tuple[Commit, ...] = ()
    """The PR's own commits, oldest first (what the replay policy replays)."""
    harness: tuple[ReferenceFile, ...] = ()
    """Every test file and test infrastructure file at the merge (testinfra.is_harness),
    put back in this state for the hidden run."""
    merged_at: str = ""
    """When the PR merged (ISO 8601), for time-based splits of the corpus."""

    def hidden(self, runner: str = DEFAULT_RUNNER, timeout: float = 300.0) -> HiddenTests:
        """What the verifier's run of this stage needs."""
        return HiddenTests(self.test_targets, self.hidden_tests, self.harness, runner, timeout)


@dataclass(frozen=True)
class Task:
    repository: str
    chain_id: str
    base_commit: str
    objective: str
    stages: tuple[Stage, ...]
    kinds: tuple[str, ...]
    dropped: tuple[tuple[int, str], ...] = ()
    """(PR, why) of the chain's PRs left out of the task."""
    license: str = ""
    """The repository's licence (an SPDX id) at the chain's last merge; "" when not known."""

    @property
    def prs(self) -> tuple[int, ...]:
        return tuple(stage.pr for stage in self.stages)


def build_task(repo_path: Path, chain_id: str, prs: Sequence[PullRequest],
               kinds: Sequence[LinkKind | str] = (),
               writer: InstructionWriter | None = None) -> Task:
    """Synthesise the task for ``prs`` (in chain order) from the local clone at ``repo_path``.

    Raises TaskError when no PR of the chain changes code outside its tests.
    """
    if not prs:
        raise TaskError("a chain needs at least one pull request")
    writer = writer or TemplateWriter()
    kind_names = tuple(str(k) for k in kinds)
    stages: list[Stage] = []
    dropped: list[tuple[int, str]] = []
    tests_so_far: list[str] = []
    for index, pr in enumerate(prs):
        link = kind_names[index - 1] if 0 < index <= len(kind_names) else None
        split = _split(repo_path, pr)
        if not split.gold_files:
            dropped.append((pr.number, "changes no code outside its tests"))
            continue
        stages.append(_stage(repo_path, pr, split, link, writer, tests_so_far))
    if not stages:
        reasons = "; ".join(f"PR #{n} {why}" for n, why in dropped)
        raise TaskError(f"no pull request of the chain changes code: {reasons}")
    kept = [pr for pr in prs if pr.number in {stage.pr for stage in stages}]
    patch = "".join(stage.gold_patch + stage.test_patch for stage in stages)
    objective = writer.objective(kept, patch)
    return Task(repository=prs[0].repository, chain_id=chain_id,
                base_commit=stages[0].base_commit, objective=objective,
                stages=tuple(stages), kinds=tuple(s.link_kind or "" for s in stages[1:]),
                dropped=tuple(dropped), license=license_at(repo_path, stages[-1].merge_commit))


LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENSE.rst", "LICENCE", "COPYING")
_LICENSES = (  # (SPDX id, phrases that must all appear), most specific first
    ("LGPL-3.0", ("GNU LESSER GENERAL PUBLIC LICENSE", "Version 3")),
    ("LGPL-2.1", ("GNU LESSER GENERAL PUBLIC LICENSE", "Version 2.1")),
    ("AGPL-3.0", ("GNU AFFERO GENERAL PUBLIC LICENSE",)),
    ("GPL-3.0", ("GNU GENERAL PUBLIC LICENSE", "Version 3")),
    ("GPL-2.0", ("GNU GENERAL PUBLIC LICENSE", "Version 2")),
    ("Apache-2.0", ("Apache License", "Version 2.0")),
    ("MPL-2.0", ("Mozilla Public License", "2.0")),
    ("BSD-3-Clause", ("Redistribution and use in source and binary forms", "Neither the name")),
    ("BSD-2-Clause", ("Redistribution and use in source and binary forms",)),
    ("MIT", ("Permission is hereby granted, free of charge",)),
    ("ISC", ("Permission to use, copy, modify, and/or distribute",)),
    ("Unlicense", ("This is free and unencumbered software released into the public domain",)),
)


def license_at(repo: Path, commit: str) -> str:
    """The SPDX id of the licence file at ``commit`` by its wording; "" when none matches."""
    for name in LICENSE_FILES:
        text = file_at(repo, commit, name)
        if text is None:
            continue
        flat = " ".join(text.split())
        for spdx, phrases in _LICENSES:
            if all(" ".join(p.split()).lower() in flat.lower() for p in phrases):
                return spdx
        return ""
    return ""


def _split(repo: Path, pr: PullRequest) -> SplitPatch:
    if not pr.base_commit or not pr.merge_commit:
        raise TaskError(f"PR #{pr.number} has no base or merge commit recorded")
    try:
        return split_change(repo, pr.base_commit, pr.merge_commit)
    except GitError as exc:
        raise TaskError(f"PR #{pr.number}: {exc}") from exc


def _stage(repo: Path, pr: PullRequest, split: SplitPatch, link: str | None,
           writer: InstructionWriter, tests_so_far: list[str]) -> Stage:
    merge = pr.merge_commit
    tests_so_far.extend(p for p in split.test_files if p not in tests_so_far)
    # Every test file seen so far, as of this PR's merge: later stages keep earlier tests.
    hidden = tuple((path, file_at(repo, merge, path)) for path in tests_so_far)
    targets = tuple(path for path, content in hidden
                    if path.endswith(".py") and content is not None
                    and not is_test_infrastructure(path))
    instruction = writer.instruction(pr, link, split.gold_patch + split.test_patch)
    return Stage(pr=pr.number, title=pr.title, instruction=instruction, link_kind=link,
                 base_commit=pr.base_commit, merge_commit=merge,
                 gold_patch=split.gold_patch, test_patch=split.test_patch,
                 gold_files=split.gold_files, test_files=split.test_files,
                 hidden_tests=hidden, test_targets=targets, commits=pr.commits,
                 harness=reference_harness(repo, merge),
                 merged_at=pr.merged_at.isoformat() if pr.merged_at else "")
