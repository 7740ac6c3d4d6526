"""Gold validation: do the PRs' own tests fail before each gold patch and pass after it?

Runs stage by stage on one sandbox, each stage on the state the previous gold patches left,
exactly as the agent will meet it. Separate from the agent run so it can be inspected alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import structlog

from rollout.task import Stage, Task
from rollout.workspace import restore, take
from sandbox.base import PatchConflict, Sandbox
from sandbox.testrun import DEFAULT_RUNNER, TestRun, run_tests

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
    """Validate every stage; the sandbox is reset to the task's base commit first.

    ``runner`` is the repository's test command (pytest unless `.github/davinci.yml` says).
    """
    sandbox.reset(task.base_commit)
    results: list[StageValidation] = []
    for stage in task.stages:
        bound = log.bind(chain=task.chain_id, pr=stage.pr)
        result = _validate_stage(stage, sandbox, test_timeout, runner)
        results.append(result)
        bound.info("validation.stage", verifiable=result.verifiable, reason=result.reason,
                   fail_to_pass=len(result.fail_to_pass))
        if result.reason.startswith("gold patch does not apply"):
            return TaskValidation(task.chain_id, False,
                                  f"PR #{stage.pr}: {result.reason}", tuple(results))
    if not any(r.verifiable for r in results):
        reasons = "; ".join(f"PR #{r.pr}: {r.reason}" for r in results)
        return TaskValidation(task.chain_id, False, f"no verifiable stage ({reasons})",
                              tuple(results))
    return TaskValidation(task.chain_id, True, "", tuple(results))


def _validate_stage(stage: Stage, sandbox: Sandbox, timeout: float,
                    runner: str) -> StageValidation:
    paths = [path for path, _ in stage.hidden_tests]
    own = take(sandbox, paths)
    restore(sandbox, stage.hidden_tests)
    try:
        before = run_tests(sandbox, stage.test_targets, timeout, runner)
        try:
            sandbox.apply_patch(stage.gold_patch)
        except PatchConflict as exc:
            return StageValidation(stage.pr, (), (), False,
                                   f"gold patch does not apply: {exc}", before.log)
        after = run_tests(sandbox, stage.test_targets, timeout, runner)
    finally:
        restore(sandbox, own)
    return _compare(stage.pr, before, after)


def _compare(pr: int, before: TestRun, after: TestRun) -> StageValidation:
    if after.error or not after.outcomes:
        reason = f"tests do not run: {after.error or 'no test was collected'}"
        return StageValidation(pr, (), (), False, reason, before.log, after.log)
    f2p = tuple(sorted(t for t in after.outcomes if after.passed(t) and not before.passed(t)))
    p2p = tuple(sorted(t for t in after.outcomes if after.passed(t) and before.passed(t)))
    reason = "" if f2p else "no test fails before the gold patch and passes after it"
    return StageValidation(pr, f2p, p2p, bool(f2p), reason, before.log, after.log)
