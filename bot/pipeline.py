"""One rollout of one mined chain, end to end: task, validation, agent, verdict, corpus.

The rollout job, `davinci rollout` and `davinci demo` all call :func:`roll_out_chain`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from bot.runtime import Runtime
from chains.config import config_at
from chains.queries import find_chain, load_pull_requests
from corpus.record import ExcludedRepository, InvalidRecord
from corpus.store import append, record_rejection
from rollout import InvalidTask, RolloutConfig, build_task, run_rollout, validate_task
from rollout.instructions import InstructionWriter, LLMWriter
from rollout.llm import LLMClient, LLMConfig
from rollout.policies import LLMPolicy, Policy
from rollout.record import trajectory_record, verdict_summary
from rollout.store import save_rollout, save_validation
from rollout.verifier import LLMJudge
from sandbox.environment import EnvironmentBuildFailed
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


def _llm(runtime: Runtime) -> LLMClient | None:
    settings = runtime.settings
    if not (settings.llm_base_url and settings.llm_model):
        return None
    return LLMClient(LLMConfig(base_url=settings.llm_base_url, model=settings.llm_model,
                               api_key=settings.llm_api_key or "none"))


def roll_out_chain(runtime: Runtime, repo_path: Path, chain_id: str, policy_name: str = "replay",
                   config: RolloutConfig | None = None, allow_local: bool = True,
                   on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Run one rollout; returns the verdict document (`davinci rollout --json`)."""
    if policy_name not in POLICIES:
        raise PipelineError(f"unknown policy {policy_name!r}: one of {', '.join(POLICIES)}")
    config = config or RolloutConfig()
    notify = on_progress or (lambda _: None)
    llm = _llm(runtime)
    if policy_name == "llm" and llm is None:
        raise PipelineError("the llm policy needs LLM_BASE_URL and LLM_MODEL")
    with runtime.db.session() as session:
        row = find_chain(session, chain_id)
        if row is None:
            raise PipelineError(f"no chain {chain_id!r} (see `davinci chains list`)")
        prs = load_pull_requests(session, row.repository, list(row.prs))
        chain_key, kinds = row.id, list(row.kinds)
    writer: InstructionWriter | None = LLMWriter(llm) if llm is not None else None
    task = build_task(repo_path, chain_key, prs, kinds, writer=writer)
    backend = choose_backend(runtime.settings.sandbox, allow_local=allow_local)
    repo_config = config_at(repo_path, task.base_commit).config
    if repo_config.test:
        config = replace(config, test_runner=repo_config.test)
    notify(Progress("validating", f"{len(task.stages)} stages in a {backend} sandbox"))
    try:
        box = open_sandbox(repo_path, task.base_commit, backend, runtime.settings.sandbox_image,
                           environment=True, install=repo_config.install,
                           build_network=runtime.settings.build_network)
    except EnvironmentBuildFailed as exc:  # the same dependencies fail the same way: a verdict
        reason = f"the environment could not be built: {exc}"
        notify(Progress("done", f"not eligible: {reason}"))
        return {"chain": chain_key, "accepted": False, "score": 0.0, "policy": policy_name,
                "stages": [], "tool_calls": 0, "tokens": 0, "eligible": False,
                "reason": reason}
    with box:
        validation = validate_task(task, box, config.test_timeout, config.test_runner)
        with runtime.db.session() as session:
            save_validation(session, validation)
        if not validation.eligible:
            notify(Progress("done", f"not eligible: {validation.reason}"))
            return {"chain": chain_key, "accepted": False, "score": 0.0, "policy": policy_name,
                    "stages": [], "tool_calls": 0, "tokens": 0, "eligible": False,
                    "reason": validation.reason}
        notify(Progress("running", f"{policy_name} policy"))
        policy: Policy | None = LLMPolicy(llm) if policy_name == "llm" and llm else None
        judge = LLMJudge(llm) if llm is not None else None
        try:
            result = run_rollout(repo_path, task, box, policy, config, validation=validation,
                                 judge=judge)
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
            reason = f"score {result.score:.2f} below {config.threshold:.2f} " \
                     f"({result.exit_status})"
            record_rejection(session, record, reason)
            stored = False
    summary = verdict_summary(result)
    summary.update(eligible=True, record_id=record["id"], stored=stored)
    notify(Progress("done", f"score {result.score:.2f}, "
                            f"{'accepted' if result.accepted else 'rejected'}"))
    log.info("rollout.finished", chain=chain_key, accepted=result.accepted, score=result.score)
    return summary
