"""The verifier: hidden tests, similarity to the gold patch and, when configured, an LLM judge.

Stage score = weighted sum of the components below; the chain score is the mean over stages.
Without a judge: 0.8 tests + 0.2 similarity. With a judge: 0.6 tests + 0.1 similarity + 0.3 judge.
A stage is *resolved* when every FAIL_TO_PASS test passes and no PASS_TO_PASS test breaks.
A stage without any such test is resolved on submit and similarity stands in for the tests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import structlog

from rollout.gitdiff import parse_patch
from rollout.llm import LLMClient, parse_score
from rollout.task import Stage
from rollout.tools import truncate
from rollout.validation import StageValidation
from rollout.workspace import restore, take
from sandbox.base import Sandbox
from sandbox.testrun import DEFAULT_RUNNER, TestRun, run_tests

log = structlog.get_logger(__name__)

WEIGHTS = {"tests": 0.8, "similarity": 0.2}
WEIGHTS_WITH_JUDGE = {"tests": 0.6, "similarity": 0.1, "judge": 0.3}


@dataclass(frozen=True)
class Verdict:
    """What the verifier decided about one attempt, and everything it saw to decide it."""

    resolved: bool
    score: float
    test_score: float
    similarity: float
    judge_score: float | None
    failing: tuple[str, ...]
    feedback: str
    test_log: str
    judge_answer: str = ""
    outcomes: dict[str, str] = field(default_factory=dict)


def similarity(agent_patch: str, gold_patch: str) -> float:
    """Mean of the Jaccard index of changed code files and the F1 of changed lines."""
    agent, gold = parse_patch(agent_patch), parse_patch(gold_patch)
    files_union = agent.files | gold.files
    files = len(agent.files & gold.files) / len(files_union) if files_union else 1.0
    mine = Counter(_changed(agent.added, "+") + _changed(agent.removed, "-"))
    theirs = Counter(_changed(gold.added, "+") + _changed(gold.removed, "-"))
    if not mine and not theirs:
        lines = 1.0
    else:
        common = sum((mine & theirs).values())
        total = sum(mine.values()) + sum(theirs.values())
        lines = 2 * common / total
    return round((files + lines) / 2, 4)


def _changed(lines: tuple[str, ...], sign: str) -> list[str]:
    return [sign + line.strip() for line in lines if line.strip()]


class Verifier:
    def __init__(self, sandbox: Sandbox, test_timeout: float = 300.0,
                 feedback_limit: int = 4_000, judge: LLMJudge | None = None,
                 runner: str = DEFAULT_RUNNER) -> None:
        self.sandbox = sandbox
        self.runner = runner
        self.test_timeout = test_timeout
        self.feedback_limit = feedback_limit
        self.judge = judge

    def hidden_run(self, stage: Stage) -> TestRun:
        """Run the stage's tests as the PR wrote them, then put the agent's files back."""
        own = take(self.sandbox, [path for path, _ in stage.hidden_tests])
        restore(self.sandbox, stage.hidden_tests)
        try:
            return run_tests(self.sandbox, stage.test_targets, self.test_timeout, self.runner)
        finally:
            restore(self.sandbox, own)

    def verify(self, stage: Stage, expected: StageValidation, agent_patch: str) -> Verdict:
        f2p, p2p = expected.fail_to_pass, expected.pass_to_pass
        if not f2p and not p2p:
            return self._untested(stage, expected, agent_patch)
        run = self.hidden_run(stage)
        failing = tuple(t for t in (*f2p, *p2p) if not run.passed(t))
        broken = [t for t in p2p if not run.passed(t)]
        fixed = [t for t in f2p if run.passed(t)]
        if run.error:
            test_score = 0.0
        else:
            fix_share = len(fixed) / len(f2p) if f2p else 1.0
            keep_share = 1 - len(broken) / len(p2p) if p2p else 1.0
            test_score = fix_share * keep_share
        resolved = run.error is None and not failing
        sim = similarity(agent_patch, stage.gold_patch)
        judge_score, answer = (None, "")
        if self.judge is not None:
            judge_score, answer = self.judge.score(stage.instruction, stage.gold_patch,
                                                   agent_patch)
        score = _combine(test_score, sim, judge_score)
        return Verdict(resolved=resolved, score=score, test_score=round(test_score, 4),
                       similarity=sim, judge_score=judge_score, failing=failing,
                       feedback="" if resolved else self._feedback(run, failing),
                       test_log=run.log, judge_answer=answer, outcomes=dict(run.outcomes))

    def _untested(self, stage: Stage, expected: StageValidation, agent_patch: str) -> Verdict:
        """No test holds this stage: it is resolved on submit and similarity stands in."""
        sim = similarity(agent_patch, stage.gold_patch)
        judge_score, answer = (None, "")
        if self.judge is not None:
            judge_score, answer = self.judge.score(stage.instruction, stage.gold_patch,
                                                   agent_patch)
        return Verdict(resolved=True, score=_combine(sim, sim, judge_score), test_score=sim,
                       similarity=sim, judge_score=judge_score, failing=(), feedback="",
                       test_log=f"no hidden tests for this stage: {expected.reason}",
                       judge_answer=answer)

    def _feedback(self, run: TestRun, failing: tuple[str, ...]) -> str:
        if run.error:
            text = f"The hidden tests could not run: {run.error}\n{run.log}"
        else:
            parts = ["These hidden tests fail:", *(f"- {t}" for t in failing), ""]
            parts += [f"{t}:\n{run.messages[t]}" for t in failing if t in run.messages]
            # Tests that never ran (collection or import errors) only show in the log.
            others = [m for t, m in run.messages.items() if t not in failing]
            if others or any(t not in run.messages for t in failing):
                parts += [*others, "Test output:", run.log[-self.feedback_limit:]]
            text = "\n".join(parts)
        return truncate(text, self.feedback_limit)


def _combine(tests: float, sim: float, judge: float | None) -> float:
    if judge is None:
        value = WEIGHTS["tests"] * tests + WEIGHTS["similarity"] * sim
    else:
        w = WEIGHTS_WITH_JUDGE
        value = w["tests"] * tests + w["similarity"] * sim + w["judge"] * judge
    return round(value, 4)


_JUDGE_PROMPT = """You review a change made for a maintainer's request. Compare the candidate
patch with the reference patch that was actually merged. Rubric: 1.0 = solves the request as
well as the reference; 0.5 = partly solves it or with notable problems; 0.0 = does not address it.
Answer with JSON only: {"score": <number between 0 and 1>, "reason": "<one sentence>"}."""


class LLMJudge:
    def __init__(self, client: LLMClient) -> None:
        self.client = client
        self.tokens = 0

    def score(self, instruction: str, gold_patch: str, agent_patch: str) -> tuple[float | None,
                                                                                     str]:
        prompt = (f"Request:\n{instruction}\n\nReference patch:\n{gold_patch[:12_000]}\n\n"
                  f"Candidate patch:\n{agent_patch[:12_000] or '(empty)'}")
        answer = self.client.complete([{"role": "system", "content": _JUDGE_PROMPT},
                                       {"role": "user", "content": prompt}])
        self.tokens += answer.tokens
        value = parse_score(answer.content)
        if value is None:
            log.warning("judge.unparsable", answer=answer.content[:200])
        return value, answer.content
