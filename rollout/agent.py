"""The agent loop: one conversation, one sandbox, the stages of a task in order.

Like mini-swe-agent: `run()` walks the stages, `step()` = ask the policy, then execute its
tool calls. Control flow rides on two exception families: a non-terminating one becomes a
message back to the agent; a terminating one (submitted, budget spent) ends the stage or run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from rollout.config import RolloutConfig
from rollout.judge import LLMJudge
from rollout.llm import Completion
from rollout.policies import Policy, ReplayPolicy, Turn
from rollout.task import Stage, Task
from rollout.timing import Clock, TimedSandbox
from rollout.tools import TOOLS, ToolBox
from rollout.upstream import UpstreamUpdate, merge_upstream
from rollout.validation import StageValidation, TaskValidation, validate_task
from rollout.verifier import Verdict, Verifier
from rollout.workspace import tree_diff, tree_id
from sandbox.base import PatchConflict, Sandbox, SandboxError

log = structlog.get_logger(__name__)

PASSED, FAILED, GOLD_APPLIED = "passed", "failed", "gold_applied"

SYSTEM_PROMPT = """You are a software engineer working in a git repository, inside a sandbox.
You receive an overall objective and then a series of requests, one at a time. Use the tools to
inspect and change the code (bash runs in the repository root). When a request is done, call
`submit`; hidden tests then check your work and you may get feedback and another attempt.
Your changes carry over from one request to the next."""


class InvalidTask(Exception):
    """The task did not pass gold validation; the message says why."""


class Submitted(Exception):
    """Terminating for a stage: the agent called submit."""


class BudgetExceeded(Exception):
    """Terminating for the rollout: the step or token budget is spent."""


@dataclass(frozen=True)
class StageResult:
    pr: int
    instruction: str
    verdict: str
    """`passed`, `failed` or `gold_applied`."""
    score: float
    attempts: int
    checks: tuple[Verdict, ...] = ()
    """What the verifier saw and decided at each attempt."""
    patch: str = ""
    """The agent's change over the stage."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds: total, sandbox, tests, policy."""


@dataclass(frozen=True)
class RolloutResult:
    task: Task
    policy: str
    model: str
    stages: tuple[StageResult, ...]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tokens: int
    tool_calls: int
    steps: int
    score: float
    accepted: bool
    exit_status: str
    """`completed`, `stage_failed` or `budget_exceeded`."""
    validation: TaskValidation
    created_at: str
    reason: str = ""
    """Why the trajectory is not accepted; empty when it is."""
    upstream: tuple[UpstreamUpdate, ...] = ()
    """The upstream changes brought in before each stage after the first."""


class Agent:
    def __init__(self, task: Task, sandbox: Sandbox, policy: Policy, config: RolloutConfig,
                 validation: TaskValidation, judge: LLMJudge | None = None,
                 repo_path: Path | None = None) -> None:
        self.task = task
        self.repo = repo_path
        self.upstream: list[UpstreamUpdate] = []
        self.clock = Clock()
        self.sandbox = TimedSandbox(sandbox, self.clock)
        self.policy = policy
        self.config = config
        self.validation = validation
        self.tools = ToolBox(self.sandbox, config.observation_limit, config.command_timeout)
        self.verifier = Verifier(self.sandbox, config.test_timeout, config.feedback_limit, judge,
                                 config.test_runner)
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
        self.tokens = 0
        self.steps = 0
        self.tool_calls = 0
        self._attempts = 0
        """Attempts at the current stage, for the record when a budget ends it."""

    def run(self) -> tuple[list[StageResult], str]:
        results: list[StageResult] = []
        note = ""
        for index, stage in enumerate(self.task.stages):
            if index:
                note += self._bring_upstream(self.task.stages[index - 1], stage)
            self._announce(index, stage, note)
            try:
                result = self._run_stage(index, stage)
            except BudgetExceeded as exc:
                log.info("rollout.budget_exceeded", chain=self.task.chain_id, reason=str(exc))
                results.append(StageResult(stage.pr, stage.instruction, FAILED, 0.0,
                                           self._attempts, timings=self._timings()))
                return self._pad(results), "budget_exceeded"
            results.append(result)
            if result.verdict == FAILED:
                return self._pad(results), "stage_failed"
            note = ("The maintainers applied their own change for the previous request; "
                    "continue from there.\n\n") if result.verdict == GOLD_APPLIED else ""
        return results, "completed"

    def _bring_upstream(self, previous: Stage, stage: Stage) -> str:
        if self.repo is None or previous.merge_commit == stage.base_commit:
            return ""
        update = merge_upstream(self.sandbox, self.repo, previous.merge_commit,
                                stage.base_commit)
        self.upstream.append(update)
        log.info("rollout.upstream", chain=self.task.chain_id, pr=stage.pr,
                 files=len(update.files), conflicts=len(update.conflicts))
        return update.note()

    def _announce(self, index: int, stage: Stage, note: str) -> None:
        if index == 0:
            text = (f"Objective: {self.task.objective}\n\n"
                    f"Request 1 of {len(self.task.stages)}:\n{stage.instruction}")
        else:
            text = f"{note}Request {index + 1} of {len(self.task.stages)}:\n{stage.instruction}"
        self.messages.append({"role": "user", "content": text})

    def _run_stage(self, index: int, stage: Stage) -> StageResult:
        started = time.perf_counter()
        self.clock.take()
        expected = self.validation.stage(stage.pr) or StageValidation(
            stage.pr, (), (), False, "not validated")
        start_tree = tree_id(self.sandbox)
        checks: list[Verdict] = []
        patch = ""
        self._attempts = 0
        for attempt in range(1, self.config.max_attempts + 1):
            self._attempts = attempt
            self._work_until_submit(Turn(index, attempt))
            try:
                patch = tree_diff(self.sandbox, start_tree, tree_id(self.sandbox))
                with self.clock.booking("tests"):
                    verdict = self.verifier.verify(stage, expected, patch)
            except SandboxError as exc:  # what the agent left in its tree stopped the check
                self._check_alive()
                verdict = self.verifier.unreadable(str(exc))
            checks.append(verdict)
            log.info("rollout.attempt", chain=self.task.chain_id, pr=stage.pr, attempt=attempt,
                     resolved=verdict.resolved, score=verdict.score)
            if verdict.resolved:
                return self._result(stage, PASSED, checks, patch, started)
            if attempt < self.config.max_attempts:
                self.messages.append({"role": "user", "content": (
                    f"Attempt {attempt} did not pass the hidden tests.\n\n{verdict.feedback}\n\n"
                    "Fix the problem and submit again.")})
        if self.config.gold_on_failure and self._apply_gold(stage, patch):
            return self._result(stage, GOLD_APPLIED, checks, patch, started)
        return self._result(stage, FAILED, checks, patch, started)

    def _check_alive(self) -> None:
        """A work tree the agent broke is its failure; a sandbox that died is ours."""
        if not self.sandbox.exec("true", timeout=30).ok:
            raise SandboxError("the sandbox stopped answering")

    def _apply_gold(self, stage: Stage, patch: str) -> bool:
        try:
            if patch:
                self.sandbox.apply_patch(patch, reverse=True)
            self.sandbox.apply_patch(stage.gold_patch)
        except PatchConflict as exc:
            log.warning("rollout.gold_failed", pr=stage.pr, error=str(exc))
            return False
        return True

    def _result(self, stage: Stage, verdict: str, checks: list[Verdict], patch: str,
                started: float) -> StageResult:
        score = checks[-1].score if checks else 0.0
        timings = self._timings()
        timings["total"] = round(time.perf_counter() - started, 6)
        return StageResult(stage.pr, stage.instruction, verdict, score, len(checks),
                           tuple(checks), patch, timings)

    def _timings(self) -> dict[str, float]:
        spent = self.clock.take()
        return {k: spent.get(k, 0.0) for k in ("sandbox", "tests", "policy")}

    def _work_until_submit(self, turn: Turn) -> None:
        while True:
            try:
                self._step(turn)
            except Submitted:
                return

    def _step(self, turn: Turn) -> None:
        if self.steps >= self.config.max_steps:
            raise BudgetExceeded(f"step budget of {self.config.max_steps} spent")
        if self.tokens >= self.config.max_tokens:
            raise BudgetExceeded(f"token budget of {self.config.max_tokens} spent")
        with self.clock.measure("policy"):
            completion = self.policy.act(self.messages, TOOLS, turn)
        self.steps += 1
        self.tokens += completion.tokens
        self.messages.append(_assistant_message(completion))
        if not completion.tool_calls:
            self.messages.append({"role": "user", "content": (
                "No tool was called. Use a tool to work on the request, or call `submit` "
                "when it is done.")})
            return
        submitted = False
        for call in completion.tool_calls:
            if submitted:
                text = "Not run: the work was already submitted in this turn."
            else:
                observation = self.tools.run(call.name, call.arguments)
                text, submitted = observation.text, observation.submitted
                self.tool_calls += 1
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
        if submitted:
            raise Submitted

    def _pad(self, results: list[StageResult]) -> list[StageResult]:
        """Stages never reached count as failed with no attempt."""
        done = len(results)
        return results + [StageResult(s.pr, s.instruction, FAILED, 0.0, 0)
                          for s in self.task.stages[done:]]


def _assistant_message(completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.content or None}
    if completion.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls]
    return message


def run_rollout(repo_path: Path, task: Task, sandbox: Sandbox, policy: Policy | None = None,
                config: RolloutConfig | None = None, *, validation: TaskValidation | None = None,
                judge: LLMJudge | None = None) -> RolloutResult:
    """Validate (unless given a validation), then run ``policy`` through every stage.

    Without a policy the human commits in ``repo_path`` are replayed. Raises InvalidTask when
    the chain is not eligible; LLM and sandbox failures propagate (they are infrastructure).
    """
    config = config or RolloutConfig()
    policy = policy or ReplayPolicy(repo_path, task)
    if validation is None:
        validation = validate_task(task, sandbox, config.test_timeout, config.test_runner,
                                   config.validation_runs)
    if not validation.eligible:
        raise InvalidTask(validation.reason)
    sandbox.reset(task.base_commit)
    agent = Agent(task, sandbox, policy, config, validation, judge, repo_path)
    stages, status = agent.run()
    score = round(sum(s.score for s in stages) / len(stages), 4)
    reason = rejection(stages, status, score, validation, config.threshold)
    log.info("rollout.done", chain=task.chain_id, policy=policy.name, score=score,
             status=status, accepted=not reason)
    return RolloutResult(
        task=task, policy=policy.name, model=policy.model, stages=tuple(stages),
        messages=agent.messages, tools=TOOLS, tokens=agent.tokens, tool_calls=agent.tool_calls,
        steps=agent.steps, score=score, accepted=not reason, exit_status=status,
        validation=validation, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        reason=reason, upstream=tuple(agent.upstream))


def rejection(stages: list[StageResult], status: str, score: float,
              validation: TaskValidation, threshold: float) -> str:
    """Why a rollout is not accepted ("" when it is): it must have completed, resolved
    every verifiable stage itself (no gold patch stood in) and reached the threshold."""
    if status != "completed":
        return f"the rollout did not complete ({status})"
    gold = [s.pr for s in stages if s.verdict == GOLD_APPLIED]
    if gold:
        return ("the maintainers' patch stood in for PR " + ", ".join(f"#{n}" for n in gold)
                + " (gold_on_failure): not the agent's work")
    verifiable = {v.pr for v in validation.stages if v.verifiable}
    unresolved = [s.pr for s in stages if s.pr in verifiable and s.verdict != PASSED]
    if unresolved:
        return "verifiable stages not resolved: " + ", ".join(f"#{n}" for n in unresolved)
    if score < threshold:
        return f"score {score:.2f} below {threshold:.2f}"
    return ""
