"""A rollout as a corpus trajectory record and as a verdict summary."""

from __future__ import annotations

import json
from typing import Any

from corpus.record import record_id
from rollout.agent import RolloutResult

SCHEMA_VERSION = 1


def trajectory_record(result: RolloutResult) -> dict[str, Any]:
    """The corpus record: chat messages + tools + metadata, with a content-hash id."""
    task = result.task
    merged = {stage.pr: stage.merged_at for stage in task.stages}
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "repository": task.repository,
        "license": task.license,
        "chain": {"id": task.chain_id, "prs": list(task.prs), "kinds": list(task.kinds)},
        "base_commit": task.base_commit,
        "objective": task.objective,
        "stages": [{"pr": s.pr, "instruction": s.instruction, "verdict": s.verdict,
                    "score": s.score, "attempts": s.attempts, "merged_at": merged.get(s.pr, "")}
                   for s in result.stages],
        "upstream": [u.to_dict() for u in result.upstream],
        "messages": result.messages,
        "tools": result.tools,
        "policy": result.policy,
        "model": result.model,
        "score": result.score,
        **token_fields(result),
        "tool_calls": result.tool_calls,
    }
    if result.condensed:
        record["condensed"] = result.condensed
    record["id"] = record_id(record)
    record["created_at"] = result.created_at
    return record


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """About four characters a token, for policies whose endpoint reports no usage (replay)."""
    return len(json.dumps(messages, ensure_ascii=False)) // 4


def token_fields(result: RolloutResult) -> dict[str, Any]:
    """`tokens`: the trajectory's length as a trainer sees it (the last call's prompt and
    reply as the server counted them; without a server, the messages' characters / 4),
    `tokens_source` says which; `tokens_billed`: every call's prompt and completion tokens,
    `tokens_completion`: what the model wrote."""
    counted = result.tokens > 0
    return {"tokens": result.tokens if counted else estimate_tokens(result.messages),
            "tokens_source": "server" if counted else "estimate",
            "tokens_billed": result.usage.billed,
            "tokens_completion": result.usage.completion}


def verdict_summary(result: RolloutResult) -> dict[str, Any]:
    """The document `davinci rollout --json` prints."""
    return {
        "chain": result.task.chain_id,
        "accepted": result.accepted,
        "score": result.score,
        "policy": result.policy,
        "model": result.model,
        "exit_status": result.exit_status,
        "reason": result.reason,
        "stages": [{"pr": s.pr, "attempts": s.attempts, "score": s.score, "verdict": s.verdict}
                   for s in result.stages],
        "tool_calls": result.tool_calls,
        **token_fields(result),
        "steps": result.steps,
    }


def audit(result: RolloutResult) -> dict[str, Any]:
    """Everything the verifier saw and why it decided: validation logs, and per attempt the
    test log, outcomes, what the hidden run did against tampering, and every judge answer."""
    return {
        "accepted": result.accepted,
        "reason": result.reason,
        "validation": result.validation.to_dict(),
        "dropped": [{"pr": pr, "reason": why} for pr, why in result.task.dropped],
        "upstream": [u.to_dict() for u in result.upstream],
        "stages": [{"pr": s.pr, "verdict": s.verdict, "patch": s.patch, "checks": [
            {"resolved": c.resolved, "score": c.score, "test_score": c.test_score,
             "similarity": c.similarity, "judge_score": c.judge_score,
             "judge_parsed": c.judge_parsed, "judge_answers": list(c.judge_answers),
             "failing": list(c.failing), "test_log": c.test_log,
             "judge_answer": c.judge_answer, "outcomes": c.outcomes,
             "integrity": c.integrity, "tampering": c.tampering}
            for c in s.checks]} for s in result.stages],
    }
