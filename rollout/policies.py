"""Policies: whatever answers the conversation with an assistant turn.

`llm` asks an OpenAI-compatible endpoint. `replay` replays the human developers' own commits
of each PR as tool calls, with their commit messages as the assistant's text.
"""

from __future__ import annotations

import json
import shlex
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chains.model import Commit
from rollout.gitdiff import GitError, file_at, git
from rollout.llm import Completion, LLMClient, ToolCall
from rollout.task import Stage, Task
from rollout.tools import SUBMIT


@dataclass(frozen=True)
class Turn:
    """Where the loop is when it asks the policy for a turn."""

    stage: int
    """Index of the stage in the task."""
    attempt: int
    """1-based attempt at that stage."""


class Policy(Protocol):
    name: str
    model: str
    reply_tokens: int
    """Completion tokens a turn may take (0: no model, no limit)."""

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
            turn: Turn, max_tokens: int | None = None) -> Completion: ...

    def context_window(self) -> int | None:
        """The model's window in tokens; None when there is none to keep to."""
        ...


class LLMPolicy:
    name = "llm"

    def __init__(self, client: LLMClient) -> None:
        self.client = client
        self.model = client.config.model
        self.reply_tokens = client.config.max_tokens

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
            turn: Turn, max_tokens: int | None = None) -> Completion:
        """One turn; the record's extras (`reasoning_content`) are not sent back."""
        sent = [{k: v for k, v in m.items() if k != "reasoning_content"}
                if "reasoning_content" in m else m for m in messages]
        return self.client.complete(sent, tools, max_tokens=max_tokens)

    def context_window(self) -> int | None:
        return self.client.context_window()


class ReplayPolicy:
    """The human commits of each PR, turned into tool calls against the sandbox."""

    name = "replay"
    model = "replay"
    reply_tokens = 0

    def __init__(self, repo_path: Path, task: Task) -> None:
        self.repo = repo_path
        self.task = task
        self._script: deque[Completion] = deque()
        self._at: Turn | None = None
        self._ids = 0

    def context_window(self) -> int | None:
        return None

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
            turn: Turn, max_tokens: int | None = None) -> Completion:
        if turn != self._at:
            self._at = turn
            stage = self.task.stages[turn.stage]
            if turn.attempt == 1:
                self._script = deque(self._stage_script(stage))
            else:
                self._script = deque([self._turn("The change as written is complete; "
                                                 "submitting it again.", [(SUBMIT, {})])])
        if not self._script:
            return self._turn("Nothing more to replay.", [(SUBMIT, {})])
        return self._script.popleft()

    def _stage_script(self, stage: Stage) -> list[Completion]:
        turns: list[Completion] = []
        commits = self._commits(stage)
        for commit, parent in commits:
            turns += self._commit_turns(commit, parent)
        turns += self._settle(stage, commits)
        if stage.test_targets:
            command = "python3 -m pytest -q -p no:cacheprovider " + " ".join(
                shlex.quote(t) for t in stage.test_targets)
            turns.append(self._turn("Running the tests for this change.",
                                    [("bash", {"command": command})]))
        turns.append(self._turn(f"Done: {stage.title}", [(SUBMIT, {"summary": stage.title})]))
        return turns

    def _commits(self, stage: Stage) -> list[tuple[Commit, str]]:
        """The PR's commits with their parents; the whole PR as one when they are gone."""
        found: list[tuple[Commit, str]] = []
        for commit in stage.commits:
            try:
                parent = git(self.repo, "rev-parse", f"{commit.sha}^").strip()
            except GitError:
                found = []
                break
            found.append((commit, parent))
        if not found:
            found = [(Commit(sha=stage.merge_commit, message=stage.title), stage.base_commit)]
        return found

    def _settle(self, stage: Stage, commits: list[tuple[Commit, str]]) -> list[Completion]:
        """Files whose merged version differs from what the replay left (the merge brought
        in the base's newer lines, resolved a conflict, or a commit of the branch was already
        upstream in a newer form): written as merged. What the replay left of a file is its
        version at the last replayed commit that changed it, else the base's."""
        left: dict[str, str] = {path: stage.base_commit
                                for path in [*stage.gold_files, *stage.test_files]}
        for commit, parent in commits:
            for path in git(self.repo, "diff", "--name-only", "--no-renames", parent,
                            commit.sha).splitlines():
                left[path] = commit.sha
        by_commit: dict[str, list[str]] = {}
        for path, sha in left.items():
            by_commit.setdefault(sha, []).append(path)
        differing: list[str] = []
        for sha, paths in by_commit.items():
            if sha != stage.merge_commit:
                differing += git(self.repo, "diff", "--name-only", "--no-renames", sha,
                                 stage.merge_commit, "--", *paths).splitlines()
        writes: list[tuple[str, dict[str, Any]]] = []
        for path in sorted(set(differing)):
            content = file_at(self.repo, stage.merge_commit, path)
            writes.append(("bash", {"command": f"rm -f -- {shlex.quote(path)}"})
                          if content is None
                          else ("write_file", {"path": path, "content": content}))
        if not writes:
            return []
        return [self._turn("Bringing the files in line with the merged change.", writes)]

    def _commit_turns(self, commit: Commit, parent: str) -> list[Completion]:
        out = git(self.repo, "diff", "--name-status", "--no-renames", parent, commit.sha)
        changes = [line.split("\t", 1) for line in out.splitlines() if "\t" in line]
        looks = [("read_file", {"path": path}) for status, path in changes if status != "A"]
        writes: list[tuple[str, dict[str, Any]]] = []
        for status, path in changes:
            if status == "D":
                writes.append(("bash", {"command": f"rm -f -- {shlex.quote(path)}"}))
                continue
            content = file_at(self.repo, commit.sha, path)
            if content is not None:
                writes.append(("write_file", {"path": path, "content": content}))
        message = commit.message.strip() or f"Commit {commit.sha[:12]}"
        turns = []
        if looks:
            turns.append(self._turn(message, looks))
            message = ""
        if writes:
            turns.append(self._turn(message, writes))
        return turns

    def _turn(self, content: str, calls: list[tuple[str, dict[str, Any]]]) -> Completion:
        tool_calls = []
        for name, args in calls:
            self._ids += 1
            tool_calls.append(ToolCall(id=f"call_{self._ids}", name=name,
                                       arguments=json.dumps(args)))
        return Completion(content=content, tool_calls=tuple(tool_calls))
