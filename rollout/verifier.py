"""The verifier: hidden tests, similarity to the gold patch and, when configured, an LLM judge.

Stage score = weighted sum of the components below; the chain score is the mean over stages.
Without a judge: 0.8 tests + 0.2 similarity. With a judge: 0.6 tests + 0.1 similarity + 0.3
judge, always (a judge answer that cannot be read scores 0, it never switches the weights).
A stage is *resolved* when every FAIL_TO_PASS and PASS_TO_PASS test passes in the hidden run
(sandbox.testrun.run_hidden) and the agent's code does not reach into the test runner. A stage
with PASS_TO_PASS tests only is not verifiable: its tests still must keep passing, and
similarity stands in for the FAIL_TO_PASS share. A stage without tests is resolved on submit.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog

from rollout.gitdiff import parse_patch
from rollout.judge import JudgeVerdict, LLMJudge
from rollout.task import Stage
from rollout.tools import truncate
from rollout.validation import StageValidation
from sandbox.base import Sandbox
from sandbox.testrun import DEFAULT_RUNNER, TestRun, run_hidden

log = structlog.get_logger(__name__)

WEIGHTS = {"tests": 0.8, "similarity": 0.2}
WEIGHTS_WITH_JUDGE = {"tests": 0.6, "similarity": 0.1, "judge": 0.3}
RUNNER_INTERNALS = re.compile(
    r"\b(_pytest|pytest_runtest\w*|pytest_collection\w*|pytest_configure|pytest_sessionfinish"
    r"|pytest_report\w*|pytest_plugins|TestReport|junitxml|junit_xml|atexit)\b"
    r"|^\s*(import|from)\s+pytest\b")
"""Names through which code under test could rewrite the runner's results from inside."""
_DOCSTRING = r"(?:(?:[rbuRBU]{0,2})(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?''')\s*)?"
CONSTANT_COMPARISON = re.compile(
    r"def\s+(__(?:eq|ne|lt|le|gt|ge)__)\s*\([^)]*\)\s*(?:->\s*[\w.\[\], ]+)?:\s*"
    + _DOCSTRING + r"return\s+(?:True|False)\b"
    r"|\b(__(?:eq|ne|lt|le|gt|ge)__)\s*=\s*lambda\b[^:\n]*:\s*(?:True|False)\b")
"""A comparison that answers the same whatever it is compared with: an object whose `==`
is always true passes every `assert result == expected`."""


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
    """The judge's last raw answer."""
    outcomes: dict[str, str] = field(default_factory=dict)
    judge_answers: tuple[str, ...] = ()
    """Every raw answer of the judge, parsed or not."""
    judge_parsed: bool | None = None
    """None without a judge; False when no answer could be read (scored 0)."""
    integrity: dict[str, object] = field(default_factory=dict)
    """What the hidden run did against tampering (sandbox.testrun.Integrity)."""
    tampering: str = ""
    """Why the agent's code was found reaching into the test runner; empty when it was not."""


def runner_tampering(agent_patch: str, gold_patch: str) -> str:
    """How the agent's code changes game the tests where the maintainers' do not; empty
    when they do not.

    Code under test runs in the test process, so a change that imports pytest's internals or
    hooks into its reports could rewrite outcomes from inside; a library rarely has reason
    to. A comparison method that answers a constant (`__eq__` returning True) makes every
    equality assertion pass. When the real patch does the same, it is not held against the
    agent.
    """
    agent, gold = parse_patch(agent_patch), parse_patch(gold_patch)
    allowed = {m.group(0).strip() for line in gold.added
               for m in RUNNER_INTERNALS.finditer(line)}
    found = sorted({m.group(0).strip() for line in agent.added
                    for m in RUNNER_INTERNALS.finditer(line)} - allowed)
    if found:
        return "the change reaches into the test runner (" + ", ".join(found) + ")"
    constant = sorted(_constant_comparisons(agent.added) - _constant_comparisons(gold.added))
    if constant:
        return ("the change makes comparisons answer the same whatever is compared ("
                + ", ".join(constant) + " returning a constant)")
    return ""


def _constant_comparisons(added: tuple[str, ...]) -> set[str]:
    text = "\n".join(added)
    return {m.group(1) or m.group(2) for m in CONSTANT_COMPARISON.finditer(text)}


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
        """The stage's tests as the PR wrote them, where the agent cannot touch them."""
        return run_hidden(self.sandbox, stage.hidden(self.runner, self.test_timeout))

    def verify(self, stage: Stage, expected: StageValidation, agent_patch: str) -> Verdict:
        f2p, p2p = expected.fail_to_pass, expected.pass_to_pass
        if not f2p and not p2p:
            return self._untested(stage, expected, agent_patch)
        run = self.hidden_run(stage)
        failing = tuple(t for t in (*f2p, *p2p) if not run.passed(t))
        broken = [t for t in p2p if not run.passed(t)]
        fixed = [t for t in f2p if run.passed(t)]
        sim = similarity(agent_patch, stage.gold_patch)
        tampering = runner_tampering(agent_patch, stage.gold_patch)
        if run.error or tampering:
            test_score = 0.0
        else:
            fix_share = len(fixed) / len(f2p) if f2p else sim
            keep_share = 1 - len(broken) / len(p2p) if p2p else 1.0
            test_score = fix_share * keep_share
        resolved = run.error is None and not failing and not tampering
        outcome = _outcome(run, f2p, p2p, failing)
        judged = self._judge(stage, agent_patch, outcome)
        score = _combine(test_score, sim, judged.score if judged else None)
        feedback = ""
        if not resolved:
            feedback = (f"Your change was not counted: {tampering}. Solve the request in the "
                        "code itself.") if tampering else self._feedback(run, failing)
        return Verdict(resolved=resolved, score=score, test_score=round(test_score, 4),
                       similarity=sim, failing=failing, feedback=feedback, test_log=run.log,
                       outcomes=dict(run.outcomes),
                       integrity=run.integrity.to_dict() if run.integrity else {},
                       tampering=tampering, **_judged(judged))

    def unreadable(self, error: str) -> Verdict:
        """An attempt whose work tree could not be read (the agent broke its repository)."""
        return Verdict(resolved=False, score=0.0, test_score=0.0, similarity=0.0,
                       judge_score=None, failing=(), test_log=error,
                       feedback=(f"Your work could not be read from the work tree ({error}). "
                                 "Keep the repository and its .git folder intact."))

    def _judge(self, stage: Stage, agent_patch: str, outcome: str) -> JudgeVerdict | None:
        if self.judge is None:
            return None
        return self.judge.score(stage.instruction, stage.gold_patch, agent_patch, outcome)

    def _untested(self, stage: Stage, expected: StageValidation, agent_patch: str) -> Verdict:
        """No test holds this stage: it is resolved on submit and similarity stands in."""
        sim = similarity(agent_patch, stage.gold_patch)
        judged = self._judge(stage, agent_patch, "no hidden tests check this request")
        return Verdict(resolved=True, score=_combine(sim, sim, judged.score if judged else None),
                       test_score=sim, similarity=sim, failing=(), feedback="",
                       test_log=f"no hidden tests for this stage: {expected.reason}",
                       **_judged(judged))

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


def _judged(judged: JudgeVerdict | None) -> dict[str, Any]:
    """A verdict's judge fields: score, last and every raw answer, whether one parsed."""
    if judged is None:
        return {"judge_score": None}
    return {"judge_score": judged.score, "judge_answer": judged.answers[-1] if judged.answers
            else "", "judge_answers": judged.answers, "judge_parsed": judged.parsed}


def _outcome(run: TestRun, f2p: tuple[str, ...], p2p: tuple[str, ...],
             failing: tuple[str, ...]) -> str:
    """The hidden test outcome in a few lines, for the judge."""
    if run.error:
        return f"hidden tests could not run: {run.error}"
    total = len(f2p) + len(p2p)
    text = f"hidden tests: {total - len(failing)} of {total} required tests pass"
    return text + ("; failing: " + ", ".join(failing[:20]) if failing else "")


def _combine(tests: float, sim: float, judge: float | None) -> float:
    if judge is None:
        value = WEIGHTS["tests"] * tests + WEIGHTS["similarity"] * sim
    else:
        w = WEIGHTS_WITH_JUDGE
        value = w["tests"] * tests + w["similarity"] * sim + w["judge"] * judge
    return round(value, 4)
