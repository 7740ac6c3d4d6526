"""Gold validation: do the PRs' own tests fail before each gold patch and pass after it?

Each stage is validated on exactly its PR's base (so its gold patch applies), with the same
hidden run the verifier uses (sandbox.testrun.run_hidden), so validation and verification
judge alike. A stage is verifiable when some test fails before the gold patch and passes
after it (FAIL_TO_PASS); the tests of earlier stages run too, as regression tests. Separate
from the agent run so it can be inspected alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import structlog

from chains import text
from chains.model import verifiable_needed
from rollout.task import Stage, Task
from sandbox.base import PatchConflict, Sandbox
from sandbox.testrun import DEFAULT_RUNNER, FAILED, TestRun, run_hidden

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StageValidation:
    pr: int
    fail_to_pass: tuple[str, ...]
    pass_to_pass: tuple[str, ...]
    verifiable: bool
    reason: str
    """Empty when verifiable; otherwise why not."""
    log_before: str = ""
    log_after: str = ""
    flaky: tuple[str, ...] = ()
    """Tests whose outcome changed between runs of the same state: no evidence either way."""


@dataclass(frozen=True)
class TaskValidation:
    chain_id: str
    eligible: bool
    reason: str
    stages: tuple[StageValidation, ...]
    python: str = ""
    """The Python the tests ran on, as the sandbox reports it (X.Y.Z)."""
    environment: str = ""
    """The image the tests ran in, and why its Python was chosen."""

    def stage(self, pr: int) -> StageValidation | None:
        return next((s for s in self.stages if s.pr == pr), None)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def validate_task(task: Task, sandbox: Sandbox, test_timeout: float = 300.0,
                  runner: str = DEFAULT_RUNNER, runs: int = 2,
                  environment: str = "") -> TaskValidation:
    """Validate every stage, each on its own PR's base.

    ``runner`` is the repository's test command (pytest unless `.github/davinci.yml` says).
    The tests run ``runs`` times before and after the gold patch; a test whose outcome
    differs between runs of the same state is flaky and left out of both lists.
    ``environment`` describes the sandbox's image, for the record.
    """
    results: list[StageValidation] = []
    python = _python(sandbox)
    for stage in task.stages:
        bound = log.bind(chain=task.chain_id, pr=stage.pr)
        sandbox.reset(stage.base_commit)
        result = _validate_stage(stage, sandbox, test_timeout, runner, max(1, runs))
        results.append(result)
        bound.info("validation.stage", verifiable=result.verifiable, reason=result.reason,
                   fail_to_pass=len(result.fail_to_pass))
        if result.reason.startswith("gold patch does not apply"):
            return TaskValidation(task.chain_id, False, f"PR #{stage.pr}: {result.reason}",
                                  tuple(results), python, environment)
    return TaskValidation(task.chain_id, *_eligible(results), tuple(results), python,
                          environment)


def _python(sandbox: Sandbox) -> str:
    """The sandbox's Python version ('' when it does not say)."""
    found = sandbox.exec("python3 -c 'import platform; print(platform.python_version())'",
                         timeout=30)
    return found.stdout.strip() if found.ok else ""


def _eligible(results: list[StageValidation]) -> tuple[bool, str]:
    verifiable = [r for r in results if r.verifiable]
    needed = verifiable_needed(len(results))
    if len(verifiable) >= needed:
        return True, ""
    reasons = "; ".join(f"PR #{r.pr}: {r.reason}" for r in results if not r.verifiable)
    if not verifiable:
        return False, f"no verifiable stage ({reasons})"
    return False, (f"only {len(verifiable)} of {len(results)} stages verifiable, "
                   f"{needed} needed ({reasons})")


def _validate_stage(stage: Stage, sandbox: Sandbox, timeout: float, runner: str,
                    runs: int) -> StageValidation:
    tests = stage.hidden(runner, timeout)
    before = [run_hidden(sandbox, tests) for _ in range(runs)]
    try:
        sandbox.apply_patch(stage.gold_patch)
    except PatchConflict as exc:
        return StageValidation(stage.pr, (), (), False,
                               f"gold patch does not apply: {exc}", before[0].log)
    after = [run_hidden(sandbox, tests) for _ in range(runs)]
    return _compare(stage.pr, before, after)


def _compare(pr: int, before: list[TestRun], after: list[TestRun]) -> StageValidation:
    first, last = before[0], after[0]
    broken = next((run for run in after if run.error or not run.outcomes), None)
    if broken is not None:
        reason = f"tests do not run: {broken.error or 'no test was collected'}"
        return StageValidation(pr, (), (), False, reason, first.log, broken.log)
    flaky = tuple(sorted(_changing(before) | _changing(after)))
    steady = [t for t in last.outcomes if t not in flaky]
    f2p = tuple(sorted(t for t in steady if last.passed(t) and not first.passed(t)))
    p2p = tuple(sorted(t for t in steady if last.passed(t) and first.passed(t)))
    reason = ""
    if not f2p:
        notes = [f"{len(flaky)} flaky test(s) left out"] if flaky else []
        if still := _failing_after(last):
            notes.append(still)
        reason = "no test fails before the gold patch and passes after it" + (
            f" ({'; '.join(notes)})" if notes else "")
    return StageValidation(pr, f2p, p2p, bool(f2p), reason, first.log, last.log, flaky)


def _failing_after(run: TestRun) -> str:
    """How many tests still fail with the gold patch, and the most common first line of what
    they report (the environment lacks something when most fail the same way: babel's tests
    need the CLDR data a build step downloads): '' when none does."""
    failing = [t for t, outcome in run.outcomes.items() if outcome == FAILED]
    if not failing:
        return ""
    lines = Counter(run.messages.get(t, "").strip().split("\n", 1)[0] for t in failing)
    common, count = lines.most_common(1)[0]
    said = f", {count} of them with: {text.snippet(common, 0, 120)}" if common else ""
    return f"{len(failing)} of {len(run.outcomes)} fail with it too{said}"


def _changing(runs: list[TestRun]) -> set[str]:
    """Tests whose outcome is not the same in every run."""
    names = set().union(*(run.outcomes for run in runs))
    return {t for t in names if len({run.outcomes.get(t) for run in runs}) > 1}
