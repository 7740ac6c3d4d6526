"""The agent loop: one conversation, one sandbox, the stages of a task in order.

Like mini-swe-agent: `run()` walks the stages, `step()` = ask the policy, then execute its
tool calls. Control flow rides on two exception families: a non-terminating one becomes a
message back to the agent; a terminating one (submitted, budget spent) ends the stage or run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from rollout.config import RolloutConfig
from rollout.context import ContextExceeded, Usage, Window
from rollout.judge import LLMJudge
from rollout.llm import Completion, LLMRefused, ToolCall
from rollout.policies import Policy, ReplayPolicy, Turn
from rollout.task import Stage, Task
from rollout.timing import Clock, TimedSandbox
from rollout.tools import TOOL_NAMES, TOOLS, ToolBox, ToolError, parse_arguments
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


class RolloutEnded(Exception):
    """Terminating for the rollout with a verdict: the model server refused a request
    (`refused`) or the conversation no longer fits its window (`context_exceeded`)."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class FormatErrors(Exception):
    """Terminating for a stage: too many turns in a row ran no tool."""


Journal = Callable[[list[dict[str, Any]]], None]
"""Hears the messages each step added, as they were when added (before any condensing)."""


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
    """The trajectory's length: the last call's prompt plus its reply, as the server counted
    them (0 when no model was called: replay)."""
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
    usage: Usage = field(default_factory=Usage)
    """Every call's tokens: billed prompt and completion totals."""
    condensed: int = 0
    """Old observations shortened to keep the conversation inside the window."""


class Agent:
    def __init__(self, task: Task, sandbox: Sandbox, policy: Policy, config: RolloutConfig,
                 validation: TaskValidation, judge: LLMJudge | None = None,
                 repo_path: Path | None = None, journal: Journal | None = None,
                 on_stage: Callable[[int, int], None] | None = None) -> None:
        self.task = task
        self.on_stage = on_stage
        """Told ``(k, n)`` as stage k of n begins, for progress shown while a rollout runs."""
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
        self.usage = Usage()
        self.window = Window(policy.context_window(), policy.reply_tokens)
        self.journal = journal
        self._journaled = 0
        self._format_errors = 0
        self.ended = ""
        """Why the rollout ended early, in words."""
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
            if self.on_stage is not None:
                self.on_stage(index + 1, len(self.task.stages))
            self._announce(index, stage, note)
            try:
                result = self._run_stage(index, stage)
            except (BudgetExceeded, RolloutEnded) as exc:
                status = exc.status if isinstance(exc, RolloutEnded) else "budget_exceeded"
                log.info("rollout.ended", chain=self.task.chain_id, status=status,
                         reason=str(exc))
                self.ended = str(exc)
                self._write_journal()
                results.append(StageResult(stage.pr, stage.instruction, FAILED, 0.0,
                                           self._attempts, timings=self._timings()))
                return self._pad(results), status
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
            try:
                self._work_until_submit(Turn(index, attempt))
            except FormatErrors as exc:
                log.info("rollout.format_errors", chain=self.task.chain_id, pr=stage.pr)
                self.ended = str(exc)
                return self._result(stage, FAILED, checks, patch, started)
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
        if self.usage.completion >= self.config.max_tokens:
            raise BudgetExceeded(f"budget of {self.config.max_tokens} completion tokens spent")
        try:
            room = self.window.fit(self.messages, TOOLS)
        except ContextExceeded as exc:
            raise RolloutEnded("context_exceeded", str(exc)) from exc
        with self.clock.measure("policy"):
            try:
                completion = self.policy.act(self.messages, TOOLS, turn, max_tokens=room)
            except LLMRefused as exc:
                raise RolloutEnded("context_exceeded" if exc.context_exceeded else "refused",
                                   str(exc)) from exc
        self.steps += 1
        self.usage.add(completion.prompt_tokens, completion.completion_tokens)
        self.window.observe(self.window.sent, completion.prompt_tokens)
        try:
            self._take(completion)
        finally:
            self._write_journal()

    def _take(self, completion: Completion) -> None:
        """Store the turn, run its tool calls, and tell the model what went wrong with it."""
        cut = completion.finish_reason == "length"
        checked = [(call, _well_formed(call)) for call in completion.tool_calls]
        calls = [(call, ok) for call, ok in checked if ok or not cut]
        message = _assistant_message(completion, calls)
        if message is not None:
            self.messages.append(message)
        ran = submitted = False
        for call, ok in calls:
            if submitted:
                text = "Not run: the work was already submitted in this turn."
            else:
                observation = self.tools.run(call.name, call.arguments)
                text, submitted = observation.text, observation.submitted
                self.tool_calls += 1
                ran = ran or (ok and call.name in TOOL_NAMES)
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
        if submitted:
            self._format_errors = 0
            raise Submitted
        problem = _problem(completion, message is None, cut, bool(calls))
        if ran and not cut:
            self._format_errors = 0
        else:
            self._format_errors += 1
            if self._format_errors >= self.config.max_format_errors:
                raise FormatErrors(f"{self._format_errors} turns in a row ran no tool "
                                   f"(the last: {problem or 'no valid tool call'})")
        if problem:
            self.messages.append({"role": "user", "content": problem})

    def _write_journal(self) -> None:
        if self.journal is not None and self._journaled < len(self.messages):
            fresh = self.messages[self._journaled:]
            self._journaled = len(self.messages)
            self.journal([dict(m) for m in fresh])

    def _pad(self, results: list[StageResult]) -> list[StageResult]:
        """Stages never reached count as failed with no attempt."""
        done = len(results)
        return results + [StageResult(s.pr, s.instruction, FAILED, 0.0, 0)
                          for s in self.task.stages[done:]]


def _well_formed(call: ToolCall) -> bool:
    """Whether the call's arguments are a JSON object (the tool's own rule)."""
    try:
        parse_arguments(call.arguments)
    except ToolError:
        return False
    return True


def _assistant_message(completion: Completion,
                       calls: list[tuple[ToolCall, bool]]) -> dict[str, Any] | None:
    """The turn as the conversation keeps it: arguments that are not a JSON object become
    `{}` (the error observation says what was wrong), since servers refuse them in the
    history and the corpus must not teach them; None for an empty turn."""
    content = completion.content if completion.content.strip() else None
    if content is None and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments if ok else "{}"}}
            for c, ok in calls]
    if completion.reasoning:
        message["reasoning_content"] = completion.reasoning
    return message


def _problem(completion: Completion, empty: bool, cut: bool, called: bool) -> str:
    """What to tell the model about a turn that ran no tool ("" when nothing is wrong)."""
    if cut:
        return (f"Your reply was cut off at the limit of {completion.completion_tokens} tokens "
                "per turn, so unfinished tool calls were dropped. Do less in one turn: write a "
                "large file in parts (write_file, then str_replace), or run one command.")
    if empty:
        return ("Your reply was empty. Use a tool to work on the request, or call `submit` "
                "when it is done.")
    if not called:
        return ("No tool was called. Use a tool to work on the request, or call `submit` "
                "when it is done.")
    return ""


def run_rollout(repo_path: Path, task: Task, sandbox: Sandbox, policy: Policy | None = None,
                config: RolloutConfig | None = None, *, validation: TaskValidation | None = None,
                judge: LLMJudge | None = None, journal: Journal | None = None,
                on_stage: Callable[[int, int], None] | None = None) -> RolloutResult:
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
    agent = Agent(task, sandbox, policy, config, validation, judge, repo_path, journal, on_stage)
    stages, status = agent.run()
    score = round(sum(s.score for s in stages) / len(stages), 4)
    reason = rejection(stages, status, score, validation, config.threshold, agent.ended)
    log.info("rollout.done", chain=task.chain_id, policy=policy.name, score=score,
             status=status, accepted=not reason)
    return RolloutResult(
        task=task, policy=policy.name, model=policy.model, stages=tuple(stages),
        messages=agent.messages, tools=TOOLS, tokens=agent.usage.length,
        tool_calls=agent.tool_calls, steps=agent.steps, score=score, accepted=not reason,
        exit_status=status, validation=validation,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"), reason=reason,
        upstream=tuple(agent.upstream), usage=agent.usage,
        condensed=len(agent.window.originals))


def rejection(stages: list[StageResult], status: str, score: float,
              validation: TaskValidation, threshold: float, ended: str = "") -> str:
    """Why a rollout is not accepted ("" when it is): it must have completed, resolved
    every verifiable stage itself (no gold patch stood in) and reached the threshold."""
    if status != "completed":
        return f"the rollout did not complete ({status}{': ' + ended if ended else ''})"
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
