"""Scripted agents that answer through the LLM simulator the way real models do: long
explorations, then the merged change, with the mistakes real models make on the way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollout import Task
from rollout.gitdiff import file_at
from tests.llm_sim import LLMSim
from tests.rollout.fixture_repo import ChainRepo

LOOKS = 50
"""Long-output commands per stage before the agent writes its change."""


def _stage_and_calls(messages: list[dict[str, Any]]) -> tuple[int, int]:
    """The request being worked on (0-based) and the tool results since it was asked."""
    for at in range(len(messages) - 1, -1, -1):
        content = messages[at].get("content") or ""
        if messages[at]["role"] == "user" and "Request " in content and " of " in content:
            number = int(content.split("Request ", 1)[1].split(" of ", 1)[0])
            return number - 1, sum(1 for m in messages[at:] if m["role"] == "tool")
    raise AssertionError("no request in the conversation")


def scripted_agent(sim: LLMSim, task: Task, chain_repo: ChainRepo,
                   looks: int = LOOKS) -> Callable[..., Any]:
    """Looks around with long-output commands, writes the merged files, submits; on the
    way: malformed arguments (stage 1), an empty turn (stage 2), a reply cut off by
    max_tokens (stage 3), and a thinking model's reasoning."""
    done: set[str] = set()

    def once(event: str) -> bool:
        if event in done:
            return False
        done.add(event)
        return True

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        stage_index, calls = _stage_and_calls(body["messages"])
        stage = task.stages[stage_index]
        if stage_index == 0 and calls == 3 and once("malformed"):
            return sim.completion("Listing the tests.", [("bash", '{"command": "ls tests')])
        if stage_index == 1 and calls == 5 and once("empty"):
            return sim.completion(None, completion_tokens=0)
        if stage_index == 2 and calls == 2 and once("cut"):
            return sim.completion("Writing it all at once.", [
                ("write_file", '{"path": "calc/stats.py", "content": "def mean(xs):\\n  ')],
                finish_reason="length", completion_tokens=body["max_tokens"])
        if calls < looks:
            return sim.completion(None, [("bash", {"command": f"seq {calls} 5000; ls -la"})],
                                  reasoning="Reading more of the output first."
                                  if calls == 1 else None)
        written = calls - looks
        if written < len(stage.gold_files):
            path = stage.gold_files[written]
            content = file_at(chain_repo.path, stage.merge_commit, path)
            assert content is not None
            return sim.completion(f"Writing {path}.", [
                ("write_file", {"path": path, "content": content})], completion_tokens=400)
        return sim.completion("Done with this request.", [("submit", {"summary": stage.title})])

    return respond
