"""Long rollouts against a server that behaves like vLLM: a 32k window it enforces, history
it parses, usage it counts. The scripted agent works through every stage of the chain with
150+ tool calls of long output, and makes the mistakes real models make on the way."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.db import Database
from corpus.export import export
from corpus.store import append
from rollout import RolloutConfig, Task, TaskValidation, run_rollout
from rollout.llm import LLMClient, LLMConfig
from rollout.policies import LLMPolicy
from rollout.record import trajectory_record
from tests.llm_sim import LLMSim
from tests.rollout.agents import scripted_agent
from tests.rollout.fixture_repo import ChainRepo

WINDOW = 32_768


@pytest.fixture
def vllm() -> Iterator[LLMSim]:
    sim = LLMSim(model="qwen-sim", max_model_len=WINDOW).start()
    yield sim
    sim.stop()


def test_a_long_rollout_in_a_32k_window_completes_and_is_stored(
        vllm: LLMSim, task: Task, validation: TaskValidation, chain_repo: ChainRepo,
        open_sandbox: Callable, sqlite_db: Database, tmp_path: Path) -> None:
    vllm.responder = scripted_agent(vllm, task, chain_repo)
    client = LLMClient(LLMConfig(base_url=vllm.base_url, model="qwen-sim", retries=0))
    journal: list[dict[str, Any]] = []
    result = run_rollout(chain_repo.path, task, open_sandbox(task.base_commit),
                         LLMPolicy(client), RolloutConfig(max_steps=400),
                         validation=validation, journal=journal.extend)

    assert vllm.refused == [], "no request passed the window or carried bad arguments"
    assert result.exit_status == "completed" and result.accepted, result.reason
    assert result.tool_calls >= 150
    assert result.condensed > 0, "old observations had to be condensed"
    assert max(LLMSim.count(r) + r["max_tokens"]
               for r in vllm.requests) <= WINDOW

    last = vllm.requests[-1]
    record = trajectory_record(result)
    assert record["tokens"] == LLMSim.count(last) + 20 <= WINDOW, \
        "the length of the conversation as the server counted it"
    assert record["tokens_source"] == "server"
    assert all(stage["merged_at"] for stage in record["stages"]), "for time-based splits"
    assert record["tokens_billed"] > 10 * record["tokens"]
    ran = [m for m in record["messages"] if m["role"] == "tool"
           and not m["content"].startswith("Not run")]
    assert record["tool_calls"] == len(ran) == result.tool_calls

    assistant = [m for m in record["messages"] if m["role"] == "assistant"]
    assert all(m.get("content") or m.get("tool_calls") for m in assistant), "no empty turn"
    arguments = [c["function"]["arguments"] for m in assistant for c in m.get("tool_calls", [])]
    assert all(isinstance(json.loads(a), dict) for a in arguments)
    assert "{}" in arguments, "the malformed call is kept, with its arguments emptied"
    users = [m["content"] for m in record["messages"] if m["role"] == "user"]
    assert any("reply was empty" in u for u in users)
    assert any("cut off at the limit" in u for u in users)
    assert not any("Writing it all at once" in (m.get("content") or "") and m.get("tool_calls")
                   for m in assistant), "the cut-off call is dropped"
    assert any(m.get("reasoning_content") for m in assistant), "reasoning is kept"
    assert not any("reasoning_content" in m for r in vllm.requests for m in r["messages"])

    assert len(journal) == len(result.messages)
    longest = max(len(m.get("content") or "") for m in journal if m["role"] == "tool")
    assert longest > max(len(m["content"]) for m in ran[:10]), "the journal holds them whole"

    with sqlite_db.session() as session:
        assert append(session, record, ()).stored
    with sqlite_db.session() as session:  # each exported record is checked by the loaders' rules
        for fmt in ("sharegpt", "openai"):
            assert export(session, tmp_path / fmt, fmt).records == 1
    shard = next((tmp_path / "sharegpt").glob("sharegpt-*.jsonl"))
    turns = json.loads(shard.read_text())["conversations"]
    assert turns[-1]["from"] == "function_call" and len(turns) % 2 == 1  # with the system turn


def test_a_prompt_the_server_refuses_as_too_long_is_a_verdict(
        llm_sim: LLMSim, first_pr_task: Task, first_pr_validation: TaskValidation,
        chain_repo: ChainRepo, open_sandbox: Callable) -> None:
    """Without a known window nothing is condensed; vLLM's refusal ends the rollout with a
    recorded verdict instead of failing the job."""
    llm_sim.reply(None, [("bash", {"command": "ls"})])
    llm_sim.script.append((400, {
        "object": "error", "type": "BadRequestError", "code": 400,
        "message": "This model's maximum context length is 4096 tokens. However, you "
                   "requested 9000 tokens (900 in the messages, 8192 in the completion)."}))
    client = LLMClient(LLMConfig(base_url=llm_sim.base_url, model="sim-model", retries=0))
    result = run_rollout(chain_repo.path, first_pr_task, open_sandbox(first_pr_task.base_commit),
                         LLMPolicy(client), validation=first_pr_validation)
    assert result.exit_status == "context_exceeded" and not result.accepted
    assert "maximum context length" in result.reason
    assert trajectory_record(result)["tool_calls"] == 1


def test_other_refusals_and_a_run_of_format_errors_end_with_a_verdict(
        llm_sim: LLMSim, first_pr_task: Task, first_pr_validation: TaskValidation,
        chain_repo: ChainRepo, open_sandbox: Callable) -> None:
    client = LLMClient(LLMConfig(base_url=llm_sim.base_url, model="sim-model", retries=0))
    llm_sim.fail(422)
    refused = run_rollout(chain_repo.path, first_pr_task,
                          open_sandbox(first_pr_task.base_commit), LLMPolicy(client),
                          validation=first_pr_validation)
    assert refused.exit_status == "refused" and "HTTP 422" in refused.reason
    assert len(llm_sim.requests) == 1, "a refusal is not retried"

    for _ in range(3):
        llm_sim.reply("Thinking about it.")
    stuck = run_rollout(chain_repo.path, first_pr_task, open_sandbox(first_pr_task.base_commit),
                        LLMPolicy(client), RolloutConfig(max_format_errors=3, max_attempts=1),
                        validation=first_pr_validation)
    assert stuck.exit_status == "stage_failed" and stuck.steps == 3
    assert stuck.stages[0].attempts == 0 or not stuck.stages[0].checks
