"""One rollout of one mined chain, end to end: task, validation, agent, verdict, corpus.

The rollout job, `davinci rollout` and `davinci demo` all call :func:`roll_out_chain`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
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
from rollout.store import not_eligible_verdict, save_rollout, save_validation
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
    """`validating`, `running` or `done`."""
    detail: str = ""


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


def _not_eligible(runtime: Runtime, notify: Callable[[Progress], None], chain: str,
                  policy: str, reason: str) -> dict[str, Any]:
    """The verdict of a chain that cannot be rolled out, stored like a failed validation."""
    notify(Progress("done", f"not eligible: {reason}"))
    with runtime.db.session() as session:
        save_validation(session, TaskValidation(chain, False, reason, ()))
    return not_eligible_verdict(chain, policy, reason)


def roll_out_chain(runtime: Runtime, repo_path: Path, chain_id: str, policy_name: str = "replay",
                   config: RolloutConfig | None = None, allow_local: bool = True,
                   on_progress: Callable[[Progress], None] | None = None,
                   limits: Mapping[str, int | float] | None = None) -> dict[str, Any]:
    """Run one rollout; returns the verdict document (`davinci rollout --json`).

    The rollout limits are ``config``'s (the defaults), then `.github/davinci.yml`'s, then
    the environment's (`DAVINCI_MAX_STEPS`, …), then ``limits`` (the command line's).
    """
    if policy_name not in POLICIES:
        raise PipelineError(f"unknown policy {policy_name!r}: one of {', '.join(POLICIES)}")
    config = config or RolloutConfig()
    notify = on_progress or (lambda _: None)
    llm = _client(runtime.settings.agent_llm(), runtime.settings)
    if policy_name == "llm" and llm is None:
        raise PipelineError("the llm policy needs LLM_BASE_URL and LLM_MODEL")
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
        chain_key, kinds = row.id, list(row.kinds)
    writer_client = _client(runtime.settings.writer_llm())
    writer: InstructionWriter | None = LLMWriter(writer_client) if writer_client else None
    try:
        task = build_task(repo_path, chain_key, prs, kinds, writer=writer)
    except TaskError as exc:
        return _not_eligible(runtime, notify, chain_key, policy_name, str(exc))
    if len(task.stages) < min(2, len(prs)):
        reason = ("fewer than two stages change code: "
                  + "; ".join(f"PR #{n} {why}" for n, why in task.dropped))
        return _not_eligible(runtime, notify, chain_key, policy_name, reason)
    backend = choose_backend(runtime.settings.sandbox, allow_local=allow_local)
    repo_config = config_at(repo_path, task.base_commit).config
    if repo_config.test:
        config = replace(config, test_runner=repo_config.test)
    chosen: dict[str, Any] = {**dict(repo_config.rollout),
                              **dict(runtime.settings.rollout_limits), **dict(limits or {})}
    config = replace(config, **chosen)
    notify(Progress("validating", f"{len(task.stages)} stages in a {backend} sandbox"))
    environments: list[Environment] = []
    try:
        box = open_sandbox(repo_path, task.base_commit, backend, runtime.settings.sandbox_image,
                           environment=True, install=repo_config.install,
                           build_network=runtime.settings.build_network,
                           access=runtime.settings.package_access(),
                           environment_commit=task.stages[-1].merge_commit,
                           python=runtime.settings.python,
                           as_of=runtime.settings.packages_as_of == "commit",
                           on_environment=lambda found: environments.append(found))
    except EnvironmentBuildFailed as exc:  # the same dependencies fail the same way: a verdict
        return _not_eligible(runtime, notify, chain_key, policy_name,
                             f"the environment could not be built: {exc}")
    with box:
        if environments and environments[0].python is not None:
            notify(Progress("validating", environments[0].python.describe()))
        validation = validate_task(task, box, config.test_timeout, config.test_runner,
                                   config.validation_runs,
                                   environment=_environment_note(environments))
        with runtime.db.session() as session:
            save_validation(session, validation)
        if not validation.eligible:  # stored above, with every stage's logs
            notify(Progress("done", f"not eligible: {validation.reason}"))
            return not_eligible_verdict(chain_key, policy_name, validation.reason)
        notify(Progress("running", f"{policy_name} policy"))
        policy: Policy | None = LLMPolicy(llm) if policy_name == "llm" and llm else None
        judge_client = _client(runtime.settings.judge_llm())
        judge = LLMJudge(judge_client) if judge_client is not None else None
        try:
            journal = FileJournal(_journal(runtime.settings, chain_key))
            try:
                result = run_rollout(repo_path, task, box, policy, config,
                                     validation=validation, judge=judge, journal=journal)
            except BaseException:
                journal.close()  # kept on disk: the messages of a rollout that did not finish
                raise
        except InvalidTask as exc:
            raise PipelineError(str(exc)) from exc
    record = trajectory_record(result)
    with runtime.db.session() as session:
        save_rollout(session, result)
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
    journal.finish()  # the verdict and the messages are stored: the journal has done its work
    summary = verdict_summary(result)
    summary.update(eligible=True, record_id=record["id"], stored=stored)
    notify(Progress("done", f"score {result.score:.2f}, "
                            f"{'accepted' if result.accepted else 'rejected'}"))
    log.info("rollout.finished", chain=chain_key, accepted=result.accepted, score=result.score)
    return summary
