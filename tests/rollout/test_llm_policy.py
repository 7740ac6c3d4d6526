"""The llm policy, instruction writer and judge against a local OpenAI-compatible server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rollout import RolloutConfig, Task, TaskValidation, build_task, run_rollout
from rollout.instructions import LLMWriter
from rollout.judge import LLMJudge
from rollout.llm import LLMClient, LLMConfig, LLMError, LLMUnavailable
from rollout.policies import LLMPolicy
from rollout.record import trajectory_record, verdict_summary
from tests.llm_sim import LLMSim
from tests.rollout.fixture_repo import STATS_MEAN, STATS_V1, ChainRepo


@pytest.fixture
def client(llm_sim: LLMSim) -> LLMClient:
    return LLMClient(LLMConfig(base_url=llm_sim.base_url, model="sim-model", api_key="k",
                               retries=2, temperature=0.3, max_tokens=777))


def _tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def test_failed_attempt_gets_feedback_and_the_retry_passes(
        llm_sim: LLMSim, client: LLMClient, first_pr_task: Task,
        first_pr_validation: TaskValidation, chain_repo: ChainRepo,
        open_sandbox: Callable) -> None:
    llm_sim.reply("Let me look at the package first.", [
        ("bash", {"command": "ls calc"}),
        ("no_such_tool", {}),
        ("read_file", "{not json"),
        ("read_file", {"path": "../../etc/passwd"}),
        ("write_file", {"path": "/etc/evil", "content": "x"}),
        ("read_file", {"path": ".git/config"}),
        ("str_replace", {"path": "calc/core.py", "old_str": "nope", "new_str": "x"}),
        ("read_file", {"path": "calc/missing.py"}),
    ])
    llm_sim.reply("I will write the statistics module now.")  # no tool call
    llm_sim.reply(None, [("write_file", {"path": "calc/stats.py", "content": STATS_MEAN})])
    llm_sim.reply("Submitting.", [("submit", {"summary": "mean"})])
    llm_sim.reply("The median is missing; adding it.", [
        ("str_replace", {"path": "calc/stats.py", "old_str": STATS_MEAN, "new_str": STATS_V1}),
        ("submit", {}), ("bash", {"command": "echo after submit"})])

    result = run_rollout(chain_repo.path, first_pr_task, open_sandbox(first_pr_task.base_commit),
                         LLMPolicy(client), validation=first_pr_validation)

    stage = result.stages[0]
    assert (stage.verdict, stage.attempts) == ("passed", 2)
    assert not stage.checks[0].resolved and stage.checks[1].resolved
    assert result.accepted and result.policy == "llm" and result.model == "sim-model"
    assert result.tokens == 120, "the length of the final conversation, not a sum"
    assert (result.usage.billed, result.usage.completion, result.usage.calls) == (600, 100, 5)

    first = llm_sim.requests[0]
    assert first["model"] == "sim-model" and first["temperature"] == 0.3
    assert first["max_tokens"] == 777
    assert {t["function"]["name"] for t in first["tools"]} >= {"bash", "submit"}
    assert "Objective:" in first["messages"][1]["content"]

    observations = _tool_messages(llm_sim.requests[1])
    assert "exit code: 0" in observations[0] and "core.py" in observations[0]
    assert "unknown tool 'no_such_tool'" in observations[1]
    assert "not valid JSON" in observations[2]
    assert all("outside the work tree" in o for o in observations[3:6])
    assert "old_str was not found" in observations[6]
    assert observations[7].startswith("Error:")

    assert "No tool was called" in llm_sim.requests[2]["messages"][-1]["content"]
    feedback = llm_sim.requests[4]["messages"][-1]["content"]
    assert "Attempt 1 did not pass" in feedback
    assert "tests/test_stats.py::test_median_sorted" in feedback
    assert "ImportError" in feedback or "cannot import name" in feedback
    assert "Not run" in result.messages[-1]["content"]  # the call after submit

    record = trajectory_record(result)
    assert record["policy"] == "llm" and record["tokens"] == 120
    assert (record["tokens_source"], record["tokens_billed"]) == ("server", 600)
    sent = llm_sim.requests[1]["messages"]
    assert [c["function"]["arguments"] for m in sent for c in m.get("tool_calls", [])
            if c["function"]["name"] == "read_file"][0] == "{}", "malformed arguments stay out"
    assert record["stages"][0]["attempts"] == 2


def test_a_transient_llm_error_is_retried_and_a_rejected_rollout_is_reported(
        llm_sim: LLMSim, client: LLMClient, first_pr_task: Task,
        first_pr_validation: TaskValidation, chain_repo: ChainRepo,
        open_sandbox: Callable) -> None:
    llm_sim.fail(429)
    llm_sim.fail(500)
    llm_sim.reply("Nothing to do.", [("submit", {})])

    result = run_rollout(chain_repo.path, first_pr_task, open_sandbox(first_pr_task.base_commit),
                         LLMPolicy(client), RolloutConfig(max_attempts=1),
                         validation=first_pr_validation)

    assert len(llm_sim.requests) == 3
    summary = verdict_summary(result)
    assert summary["accepted"] is False
    assert summary["stages"] == [{"pr": 1, "attempts": 1, "score": summary["score"],
                                  "verdict": "failed"}]
    assert summary["score"] < 0.8
    assert result.exit_status == "stage_failed"


def test_an_llm_that_keeps_failing_is_an_infrastructure_error(
        llm_sim: LLMSim, client: LLMClient, first_pr_task: Task,
        first_pr_validation: TaskValidation, chain_repo: ChainRepo,
        open_sandbox: Callable) -> None:
    llm_sim.fail(503, times=3)
    with pytest.raises(LLMUnavailable, match="HTTP 503"):
        run_rollout(chain_repo.path, first_pr_task, open_sandbox(first_pr_task.base_commit),
                    LLMPolicy(client), validation=first_pr_validation)
    assert len(llm_sim.requests) == 3


def test_a_refused_request_is_not_retried(llm_sim: LLMSim, client: LLMClient) -> None:
    llm_sim.fail(400)
    with pytest.raises(LLMError, match="HTTP 400") as caught:
        client.complete([{"role": "user", "content": "hi"}])
    assert not isinstance(caught.value, LLMUnavailable)
    assert len(llm_sim.requests) == 1


def test_gold_patch_carries_a_failed_stage_when_configured(
        llm_sim: LLMSim, client: LLMClient, chain_repo: ChainRepo,
        open_sandbox: Callable) -> None:
    task = build_task(chain_repo.path, "chain-two", chain_repo.prs[:2], chain_repo.kinds[:1])
    llm_sim.reply("Done.", [("submit", {})])
    llm_sim.reply("Done again.", [("submit", {})])

    result = run_rollout(chain_repo.path, task, open_sandbox(task.base_commit), LLMPolicy(client),
                         RolloutConfig(max_attempts=1, gold_on_failure=True))

    assert [s.verdict for s in result.stages] == ["gold_applied", "gold_applied"]
    assert result.exit_status == "completed" and not result.accepted
    assert trajectory_record(result)["stages"][0]["verdict"] == "gold_applied"
    second_request = llm_sim.requests[1]["messages"][-1]["content"]
    assert "maintainers applied their own change" in second_request
    assert "tests/test_stats.py::test_variance" in result.stages[1].checks[0].failing


@pytest.mark.parametrize(("config", "steps"), [
    (RolloutConfig(max_steps=3), 3),
    (RolloutConfig(max_tokens=40), 2),  # each scripted turn writes 20 completion tokens
], ids=["steps", "tokens"])
def test_a_spent_budget_ends_the_rollout(llm_sim: LLMSim, client: LLMClient, task: Task,
                                         validation: TaskValidation, chain_repo: ChainRepo,
                                         open_sandbox: Callable, config: RolloutConfig,
                                         steps: int) -> None:
    for _ in range(3):
        llm_sim.reply(None, [("bash", {"command": "true"})])
    result = run_rollout(chain_repo.path, task, open_sandbox(task.base_commit),
                         LLMPolicy(client), config, validation=validation)
    assert result.exit_status == "budget_exceeded"
    assert [s.verdict for s in result.stages] == ["failed"] * 3
    assert result.steps == steps and not result.accepted


def test_observations_are_truncated_with_a_marker(
        llm_sim: LLMSim, client: LLMClient, first_pr_task: Task,
        first_pr_validation: TaskValidation, chain_repo: ChainRepo,
        open_sandbox: Callable) -> None:
    llm_sim.reply(None, [("bash", {"command": "seq 1 5000"})])
    llm_sim.reply(None, [("submit", {})])
    run_rollout(chain_repo.path, first_pr_task, open_sandbox(first_pr_task.base_commit),
                LLMPolicy(client), RolloutConfig(max_attempts=1, observation_limit=200),
                validation=first_pr_validation)
    seen = _tool_messages(llm_sim.requests[1])[0]
    assert "characters truncated" in seen and len(seen) < 300
    assert seen.startswith("exit code: 0") and seen.rstrip().endswith("5000")


def test_a_leaking_instruction_is_rejected_and_rewritten(
        llm_sim: LLMSim, client: LLMClient, chain_repo: ChainRepo) -> None:
    leaky = "Change median so it does return (ordered[middle - 1] + ordered[middle]) / 2."
    fenced = "Fix median:\n```\nsorted(values)\n```"
    clean = "median gives wrong answers for unsorted input and for an even number of values."
    llm_sim.reply(leaky)
    llm_sim.reply(fenced)
    llm_sim.reply(clean)
    llm_sim.reply("Make the statistics helpers correct for any input order.")
    writer = LLMWriter(client)

    task = build_task(chain_repo.path, "chain-fix", chain_repo.prs[2:], writer=writer)

    assert task.stages[0].instruction == clean
    assert task.objective == "Make the statistics helpers correct for any input order."
    assert [reason for _, _, reason in writer.rejected] == [
        "copies an added line of the patch: "
        "'return (ordered[middle - 1] + ordered[middle]) / 2'",
        "contains a code block or diff hunk"]
    assert "Rejected" in llm_sim.requests[1]["messages"][-1]["content"]
    assert writer.tokens == 4 * 120


def test_instructions_fall_back_to_the_template_when_every_draft_leaks(
        llm_sim: LLMSim, client: LLMClient, chain_repo: ChainRepo) -> None:
    for _ in range(3):
        llm_sim.reply("```diff\n+    ordered = sorted(values)\n```")
    llm_sim.reply("Correct statistics.")
    task = build_task(chain_repo.path, "chain-fix", chain_repo.prs[2:],
                      writer=LLMWriter(client, attempts=3))
    assert task.stages[0].instruction.startswith("Fix median for unsorted")
    assert "sorted(values)" not in task.stages[0].instruction


def test_a_writer_request_the_server_refuses_falls_back_to_the_template(
        llm_sim: LLMSim, client: LLMClient, chain_repo: ChainRepo) -> None:
    llm_sim.fail(400)
    llm_sim.reply("Correct statistics.")
    writer = LLMWriter(client, attempts=3)
    task = build_task(chain_repo.path, "chain-fix", chain_repo.prs[2:], writer=writer)
    assert task.stages[0].instruction.startswith("Fix median for unsorted")
    assert "refused" in writer.rejected[0][2] and len(llm_sim.requests) == 2


def test_the_judge_score_enters_the_stage_score(
        llm_sim: LLMSim, client: LLMClient, first_pr_task: Task,
        first_pr_validation: TaskValidation, chain_repo: ChainRepo,
        open_sandbox: Callable) -> None:
    llm_sim.responder = lambda body: {
        "id": "j", "object": "chat.completion", "created": 0, "model": "sim-model",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": json.dumps({"score": 0.5, "reason": "partial"})}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    judge = LLMJudge(client)
    result = run_rollout(chain_repo.path, first_pr_task, open_sandbox(first_pr_task.base_commit),
                         judge=judge, validation=first_pr_validation)
    check = result.stages[0].checks[0]
    assert check.judge_score == 0.5 and "partial" in check.judge_answer
    assert result.score == pytest.approx(0.6 * 1.0 + 0.1 * 1.0 + 0.3 * 0.5)
    assert "Reference patch" in llm_sim.requests[0]["messages"][1]["content"]
