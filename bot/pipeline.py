"""One rollout of one mined chain, end to end: task, validation, agent, verdict, corpus.

The rollout job, `davinci rollout` and `davinci demo` all call :func:`roll_out_chain`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from bot.runtime import Runtime
from bot.settings import LLMEndpoint, Settings
from chains.config import config_at
from chains.queries import AmbiguousChain, find_chain, load_pull_requests
from corpus.record import ExcludedRepository, InvalidRecord
from corpus.store import append, record_rejection
from rollout import (
    InvalidTask,
    RolloutConfig,
    RolloutResult,
    Task,
    TaskError,
    TaskValidation,
    build_task,
    run_rollout,
    validate_task,
)
from rollout.instructions import InstructionWriter, LLMWriter
from rollout.journal import FileJournal
from rollout.judge import LLMJudge
from rollout.llm import LLMClient, LLMConfig
from rollout.policies import LLMPolicy, Policy
from rollout.record import trajectory_record, verdict_summary
from rollout.store import (
    RolloutRow,
    claim_verdict,
    mark_run,
    not_eligible_verdict,
    run_verdict,
    save_rollout,
    save_validation,
)
from sandbox.base import Sandbox
from sandbox.environment import Environment, EnvironmentBuildFailed
from sandbox.factory import choose_backend, open_sandbox

log = structlog.get_logger()
POLICIES = ("replay", "llm")


class PipelineError(RuntimeError):
    """The chain cannot be rolled out as asked; the message says why."""


@dataclass(frozen=True)
class Progress:
    """Where a rollout is, for progress output and the PR status."""

    step: str
    """`validating`, `building` (an environment image, with the time so far), `running`,
    `stage` (detail: "k of n"), `note` or `done`."""
    detail: str = ""


@dataclass(frozen=True)
class RolloutOutcome:
    """How one rollout of one chain ended: the one result every caller gets."""

    chain: str
    policy: str
    state: str
    """`accepted`, `rejected` (the verifier's verdict), `not_eligible` (the chain cannot be
    rolled out: no verifiable stage, no environment, …) or `failed` (the rollout could not be
    done: see `reason`)."""
    reason: str = ""
    score: float = 0.0
    summary: Mapping[str, Any] = field(default_factory=dict)
    """`rollout.record.verdict_summary` of a rollout that ran (stages, tool calls, tokens)."""
    record_id: str | None = None
    stored: bool = False
    """The trajectory was appended to the corpus."""
    rollout_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.state == "accepted"

    @property
    def eligible(self) -> bool:
        return self.state in ("accepted", "rejected")

    @classmethod
    def failed(cls, chain: str, policy: str, error: str) -> RolloutOutcome:
        return cls(chain, policy, "failed", f"the rollout failed: {error}")

    def to_json(self) -> dict[str, Any]:
        """The document `davinci rollout --json` prints (and rq jobs return)."""
        if not self.eligible:
            document = not_eligible_verdict(self.chain, self.policy, self.reason)
            return {**document, "failed": True} if self.state == "failed" else document
        return {**self.summary, "eligible": True, "record_id": self.record_id,
                "stored": self.stored}

    @classmethod
    def of(cls, row: RolloutRow) -> RolloutOutcome:
        """The outcome a stored verdict records (nothing stored by this call)."""
        return cls(row.chain_id, row.policy, "accepted" if row.accepted else "rejected",
                   str(row.summary.get("reason") or ""), row.score, dict(row.summary),
                   row.record_id, False, row.id)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> RolloutOutcome:
        chain, policy = str(document.get("chain", "")), str(document.get("policy", ""))
        reason = str(document.get("reason") or "")
        if document.get("failed"):
            return cls(chain, policy, "failed", reason)
        if not document.get("eligible", True):
            return cls(chain, policy, "not_eligible", reason)
        state = "accepted" if document.get("accepted") else "rejected"
        return cls(chain, policy, state, reason, float(document.get("score") or 0.0),
                   dict(document), document.get("record_id"), bool(document.get("stored")))


def _environment_note(environments: list[Environment]) -> str:
    """What the validation records of the image its tests ran in."""
    if not environments:
        return ""
    found = environments[0]
    python = found.python.describe() if found.python is not None else ""
    return "; ".join(filter(None, [found.image, python]))


def _client(endpoint: LLMEndpoint | None, settings: Settings | None = None) -> LLMClient | None:
    """A client for one role; the agent's (given ``settings``) takes LLM_TEMPERATURE,
    LLM_MAX_TOKENS and LLM_CONTEXT_WINDOW, the writer and the judge keep their defaults."""
    if endpoint is None:
        return None
    tuned: dict[str, Any] = {} if settings is None else {
        "temperature": settings.llm_temperature, "max_tokens": settings.llm_max_tokens,
        "context_window": settings.llm_context_window}
    return LLMClient(LLMConfig(base_url=endpoint.base_url, model=endpoint.model,
                               api_key=endpoint.api_key or "none", **tuned))


def _journal(settings: Settings, chain: str) -> Path:
    """Where a rollout's messages are written as they happen (one JSON line each)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return settings.data_dir / "journals" / f"{chain}-{stamp}.jsonl"


@dataclass(frozen=True)
class _Chain:
    id: str
    prs: list[Any]
    kinds: list[str]


class _Run:
    """Writes a rollout's steps to its run row (`rollout_runs`), the chain's state everywhere;
    and tells ``notify`` (the caller's progress)."""

    def __init__(self, runtime: Runtime, run_id: str, chain: _Chain, policy: str,
                 notify: Callable[[Progress], None]) -> None:
        self.runtime, self.id, self.chain, self.policy = runtime, run_id, chain, policy
        self.notify = notify

    def mark(self, state: str, **fields: Any) -> None:
        with self.runtime.db.session() as session:
            mark_run(session, self.id, state, chain_id=self.chain.id,
                     chain_length=len(self.chain.prs), policy=self.policy, **fields)

    def earlier_verdict(self) -> RolloutOutcome | None:
        """What an earlier attempt of this run concluded, if one did."""
        with self.runtime.db.session() as session:
            row = run_verdict(session, self.id)
            return RolloutOutcome.of(row) if row is not None else None

    def start(self, count: bool) -> None:
        """``count``: this is a new attempt (a job counts its own when it starts)."""
        with self.runtime.db.session() as session:
            row = mark_run(session, self.id, "validating", chain_id=self.chain.id,
                           chain_length=len(self.chain.prs), policy=self.policy)
            if count:
                row.attempts = (row.attempts or 0) + 1

    def stage(self, index: int, total: int) -> None:
        self.mark("running", stage=index, stages=total)
        self.notify(Progress("stage", f"{index} of {total}"))

    def end(self, outcome: RolloutOutcome) -> RolloutOutcome:
        score = outcome.score if outcome.eligible else None
        stages = len(outcome.summary.get("stages", [])) or None
        self.mark(outcome.state, reason=outcome.reason, score=score, stage=None,
                  stages=stages, rollout_id=outcome.rollout_id, retry_at=None)
        if outcome.eligible:
            state = "accepted" if outcome.accepted else "rejected"
            self.notify(Progress("done", f"score {outcome.score:.2f}, {state}"))
        else:  # the first line: the caller prints the whole reason with the outcome
            first = outcome.reason.splitlines()[0] if outcome.reason else ""
            self.notify(Progress("done", f"not eligible: {first[:200]}"))
        return outcome

    def not_eligible(self, reason: str) -> RolloutOutcome:
        """A chain that cannot be rolled out; stored like a failed validation too."""
        with self.runtime.db.session() as session:
            save_validation(session, TaskValidation(self.chain.id, False, reason, ()))
        return self.end(RolloutOutcome(self.chain.id, self.policy, "not_eligible", reason))


def roll_out_chain(runtime: Runtime, repo_path: Path, chain_id: str, policy_name: str = "replay",
                   config: RolloutConfig | None = None,
                   on_progress: Callable[[Progress], None] | None = None,
                   limits: Mapping[str, int | float] | None = None,
                   run_id: str | None = None) -> RolloutOutcome:
    """Run one rollout: prepare the task, validate it in a sandbox, execute the policy,
    persist the verdict. Every step is written to the run ``run_id`` (a job's id, whose job
    counted the attempt; a new `local-…` run without one).

    The rollout limits are ``config``'s (the defaults), then `.github/davinci.yml`'s, then
    the environment's (`DAVINCI_MAX_STEPS`, …), then ``limits`` (the command line's).
    Raises PipelineError when the rollout cannot be done as asked; whatever else fails
    (infrastructure, a bug) is written to the run as `failed` and raised.
    """
    if policy_name not in POLICIES:
        raise PipelineError(f"unknown policy {policy_name!r}: one of {', '.join(POLICIES)}")
    llm = _client(runtime.settings.agent_llm(), runtime.settings)
    if policy_name == "llm" and llm is None:
        raise PipelineError("the llm policy needs LLM_BASE_URL and LLM_MODEL")
    chain, prs = _find(runtime, chain_id)
    run = _Run(runtime, run_id or f"local-{uuid.uuid4().hex[:12]}", chain, policy_name,
               on_progress or (lambda _: None))
    if (earlier := run.earlier_verdict()) is not None:  # a retry of a job that did finish
        log.info("rollout.verdict_exists", run=run.id, chain=chain.id)
        return run.end(earlier)
    run.start(count=run_id is None)
    with _failures_recorded(run):
        helpers = _helpers(runtime.settings, policy_name, run.notify)
        prepared = _prepare(runtime, repo_path, chain, prs, config or RolloutConfig(), limits,
                            helpers.writer)
        if isinstance(prepared, str):
            return run.not_eligible(prepared)
        task, config = prepared
        backend = choose_backend(runtime.settings.sandbox)
        run.notify(Progress("validating", f"{len(task.stages)} stages in a {backend} sandbox"))
        environments: list[Environment] = []
        try:
            box = _open(runtime, repo_path, task, backend, environments, run.notify)
        except EnvironmentBuildFailed as exc:  # the same dependencies fail the same way
            return run.not_eligible(f"the environment could not be built: {exc}")
        with box:
            if environments and environments[0].python is not None:
                run.notify(Progress("validating", environments[0].python.describe()))
            validation = validate_task(task, box, config.test_timeout, config.test_runner,
                                       config.validation_runs,
                                       environment=_environment_note(environments))
            with runtime.db.session() as session:
                save_validation(session, validation)
            if not validation.eligible:  # stored above, with every stage's logs
                return run.end(RolloutOutcome(chain.id, policy_name, "not_eligible",
                                              validation.reason))
            run.mark("running", stage=None, stages=len(task.stages))
            run.notify(Progress("running", f"{policy_name} policy"))
            result, journal = _execute(repo_path, task, box,
                                       llm if policy_name == "llm" else None, config,
                                       validation, run, helpers.judge, runtime.settings)
        outcome = _persist(runtime, result, run.id)
        journal.finish()  # the verdict and the messages are stored: its work is done
        return run.end(outcome)
    raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises


@contextmanager
def _failures_recorded(run: _Run) -> Iterator[None]:
    """A rollout that raises is written to its run as failed (a job's failure hook then says
    whether it is retried), and the exception goes on."""
    try:
        yield
    except Exception as exc:
        from bot.failures import describe

        try:
            run.mark("failed", reason=describe(exc), stage=None)
        except Exception:  # noqa: BLE001 - the database may be what failed
            log.warning("rollout.failure_not_recorded", run=run.id)
        raise


def _find(runtime: Runtime, chain_id: str) -> tuple[_Chain, list[Any]]:
    with runtime.db.session() as session:
        try:
            row = find_chain(session, chain_id)
        except AmbiguousChain as many:
            raise PipelineError(f"{chain_id!r} names {len(many.matches)} chains "
                                f"({', '.join(many.matches[:5])}…): give more of the id") \
                from None
        if row is None:
            raise PipelineError(f"no chain {chain_id!r} (see `davinci chains list`)")
        prs = load_pull_requests(session, row.repository, list(row.prs))
        return _Chain(row.id, list(row.prs), list(row.kinds)), prs


@dataclass(frozen=True)
class _Helpers:
    """The models that help a rollout without being its policy."""

    writer: InstructionWriter | None
    judge: LLMJudge | None


def _helpers(settings: Settings, policy: str, notify: Callable[[Progress], None]) -> _Helpers:
    """The instruction writer and the judge, when configured. A replay rollout needs no model:
    when the server does not answer, it goes on with template instructions and no judge (one
    rule for the whole rollout, said once) instead of failing."""
    writer_client = _client(settings.writer_llm())
    judge_client = _client(settings.judge_llm())
    if policy == "replay":
        for role, client in (("instruction writer", writer_client), ("judge", judge_client)):
            if client is not None and not client.answers():
                notify(Progress("note", f"the {role}'s model server at "
                                        f"{client.config.base_url} does not answer: this replay "
                                        f"rollout goes on without it"))
                log.info("rollout.helper_unavailable", role=role,
                            endpoint=client.config.base_url)
                if role == "judge":
                    judge_client = None
                else:
                    writer_client = None
    return _Helpers(LLMWriter(writer_client) if writer_client else None,
                    LLMJudge(judge_client) if judge_client else None)


def _prepare(runtime: Runtime, repo_path: Path, chain: _Chain, prs: list[Any],
             config: RolloutConfig, limits: Mapping[str, int | float] | None,
             writer: InstructionWriter | None) -> tuple[Task, RolloutConfig] | str:
    """The task and its configuration, or why the chain cannot be rolled out."""
    try:
        task = build_task(repo_path, chain.id, prs, chain.kinds, writer=writer)
    except TaskError as exc:
        return str(exc)
    if len(task.stages) < min(2, len(prs)):
        return ("fewer than two stages change code: "
                + "; ".join(f"PR #{n} {why}" for n, why in task.dropped))
    repo_config = config_at(repo_path, task.base_commit).config
    if repo_config.test:
        config = replace(config, test_runner=repo_config.test)
    chosen: dict[str, Any] = {**dict(repo_config.rollout),
                              **dict(runtime.settings.rollout_limits), **dict(limits or {})}
    return task, replace(config, **chosen)


def _open(runtime: Runtime, repo_path: Path, task: Task, backend: str,
          environments: list[Environment], notify: Callable[[Progress], None]) -> Sandbox:
    settings = runtime.settings
    install = config_at(repo_path, task.base_commit).config.install
    return open_sandbox(repo_path, task.base_commit, backend, settings.sandbox_image,
                        environment=True, install=install,
                        build_network=settings.build_network,
                        access=settings.package_access(),
                        environment_commit=task.stages[-1].merge_commit,
                        python=settings.python, as_of=settings.packages_as_of == "commit",
                        on_environment=lambda found: environments.append(found),
                        on_build=lambda building: notify(Progress("building",
                                                                  building.describe())))


def _execute(repo_path: Path, task: Task, box: Sandbox, llm: LLMClient | None,
             config: RolloutConfig, validation: TaskValidation, run: _Run,
             judge: LLMJudge | None, settings: Settings) -> tuple[RolloutResult, FileJournal]:
    policy: Policy | None = LLMPolicy(llm) if llm is not None else None
    journal = FileJournal(_journal(settings, task.chain_id))
    try:
        result = run_rollout(repo_path, task, box, policy, config, validation=validation,
                             judge=judge, journal=journal, on_stage=run.stage)
    except InvalidTask as exc:
        journal.close()
        raise PipelineError(str(exc)) from exc
    except BaseException:
        journal.close()  # kept on disk: the messages of a rollout that did not finish
        raise
    return result, journal


class _VerdictTaken(Exception):
    """Another attempt of the run stored its verdict first."""


def _persist(runtime: Runtime, result: RolloutResult, run_id: str) -> RolloutOutcome:
    """The verdict and, when accepted, the trajectory in the corpus; or, when another
    attempt of run ``run_id`` got there first, that attempt's verdict and nothing stored."""
    record = trajectory_record(result)
    try:
        rollout_id, stored = _store_verdict(runtime, result, record, run_id)
    except _VerdictTaken:
        with runtime.db.session() as session:
            row = run_verdict(session, run_id)
            assert row is not None, "a claimed verdict is stored in the same transaction"
            log.warning("rollout.verdict_taken", run=run_id, chain=result.task.chain_id,
                        kept=row.record_id, discarded=record["id"])
            return RolloutOutcome.of(row)
    summary = verdict_summary(result)
    log.info("rollout.finished", chain=result.task.chain_id, accepted=result.accepted,
             score=result.score)
    return RolloutOutcome(result.task.chain_id, result.policy,
                          "accepted" if result.accepted else "rejected", result.reason,
                          result.score, summary, record["id"], stored, rollout_id)


def _store_verdict(runtime: Runtime, result: RolloutResult, record: dict[str, Any],
                   run_id: str) -> tuple[int, bool]:
    """Save the verdict, claim it as the run's, and append the trajectory, in one
    transaction; raises _VerdictTaken (and stores nothing) when the claim fails."""
    with runtime.db.session() as session:
        rollout_id = save_rollout(session, result)
        if not claim_verdict(session, run_id, rollout_id):
            raise _VerdictTaken(run_id)
        if result.accepted:
            try:
                with session.begin_nested():
                    stored = append(session, record, runtime.settings.corpus_exclude).stored
            except (ExcludedRepository, InvalidRecord) as exc:
                record_rejection(session, record, f"refused by the corpus: {exc}")
                stored = False
        else:
            record_rejection(session, record, result.reason)
            stored = False
    return rollout_id, stored
