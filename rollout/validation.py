"""Gold validation: do the PRs' own tests fail before each gold patch and pass after it?

Each stage is validated on exactly its PR's base (so its gold patch applies), with the same
hidden run the verifier uses (sandbox.testrun.run_hidden), so validation and verification
judge alike. A stage is verifiable when some test fails before the gold patch and passes
after it (FAIL_TO_PASS); the tests of earlier stages run too, as regression tests. Separate
from the agent run so it can be inspected alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import structlog

from rollout.task import Stage, Task
from sandbox.base import PatchConflict, Sandbox
from sandbox.testrun import DEFAULT_RUNNER, TestRun, run_hidden

MIN_VERIFIABLE = 2
"""Verifiable stages a chain needs (a one-stage task needs its one)."""

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


@dataclass(frozen=True)
class TaskValidation:
    chain_id: str
    eligible: bool
    reason: str
    stages: tuple[StageValidation, ...]

    def stage(self, pr: int) -> StageValidation | None:
        return next((s for s in self.stages if s.pr == pr), None)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def validate_task(task: Task, sandbox: Sandbox, test_timeout: float = 300.0,
                  runner: str = DEFAULT_RUNNER) -> TaskValidation:
    """Validate every stage, each on its own PR's base.

    ``runner`` is the repository's test command (pytest unless `.github/davinci.yml` says).
    """
    results: list[StageValidation] = []
    for stage in task.stages:
        bound = log.bind(chain=task.chain_id, pr=stage.pr)
        sandbox.reset(stage.base_commit)
        result = _validate_stage(stage, sandbox, test_timeout, runner)
        results.append(result)
        bound.info("validation.stage", verifiable=result.verifiable, reason=result.reason,
                   fail_to_pass=len(result.fail_to_pass))
        if result.reason.startswith("gold patch does not apply"):
            return TaskValidation(task.chain_id, False,
                                  f"PR #{stage.pr}: {result.reason}", tuple(results))
    return TaskValidation(task.chain_id, *_eligible(results), tuple(results))


def _eligible(results: list[StageValidation]) -> tuple[bool, str]:
    verifiable = [r for r in results if r.verifiable]
    needed = min(MIN_VERIFIABLE, len(results))
    if len(verifiable) >= needed:
        return True, ""
    reasons = "; ".join(f"PR #{r.pr}: {r.reason}" for r in results if not r.verifiable)
    if not verifiable:
        return False, f"no verifiable stage ({reasons})"
    return False, (f"only {len(verifiable)} of {len(results)} stages verifiable, "
                   f"{needed} needed ({reasons})")


def _validate_stage(stage: Stage, sandbox: Sandbox, timeout: float,
                    runner: str) -> StageValidation:
    tests = stage.hidden(runner, timeout)
    before = run_hidden(sandbox, tests)
    try:
        sandbox.apply_patch(stage.gold_patch)
    except PatchConflict as exc:
        return StageValidation(stage.pr, (), (), False,
                               f"gold patch does not apply: {exc}", before.log)
    after = run_hidden(sandbox, tests)
    return _compare(stage.pr, before, after)


def _compare(pr: int, before: TestRun, after: TestRun) -> StageValidation:
    if after.error or not after.outcomes:
        reason = f"tests do not run: {after.error or 'no test was collected'}"
        return StageValidation(pr, (), (), False, reason, before.log, after.log)
    f2p = tuple(sorted(t for t in after.outcomes if after.passed(t) and not before.passed(t)))
    p2p = tuple(sorted(t for t in after.outcomes if after.passed(t) and before.passed(t)))
    reason = "" if f2p else "no test fails before the gold patch and passes after it"
    return StageValidation(pr, f2p, p2p, bool(f2p), reason, before.log, after.log)
