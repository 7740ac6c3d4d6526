"""`pull_request`: a merged PR becomes one mining job; everything else is accepted and ignored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot.models import Repository
from bot.prepared import Prepared
from handlers import MINING_QUEUE, Event, JobSpec, Outcome, Router, job_id, require

REPOSITORY_STATE = Prepared(select(Repository.enabled, Repository.removed).where(
    Repository.id == bindparam("id")))
"""Run on the session's connection, in its transaction: no ORM object per delivery."""


def register(router: Router) -> None:
    @router.shape("pull_request")
    def shape(payload: dict[str, Any]) -> None:
        require(payload, "action", str)
        require(payload, "number", int)
        require(payload, "pull_request", dict)
        require(payload, "repository.id", int)
        require(payload, "repository.full_name", str)
        if payload.get("action") == "closed":
            require(payload, "pull_request.merged", bool)
            require(payload, "installation.id", int)

    @router.register("pull_request")
    def on_pull_request(event: Event, session: Session) -> Outcome:
        payload = event.payload
        if event.action != "closed":
            return Outcome(note=f"pull_request.{event.action} is not mined")
        if not payload["pull_request"]["merged"]:
            return Outcome(note="closed without merge")
        full_name = payload["repository"]["full_name"]
        repo = REPOSITORY_STATE.run_in(session, {"id": payload["repository"]["id"]}).fetchone()
        if repo is not None and (not repo[0] or repo[1]):  # (enabled, removed)
            return Outcome(note=f"{full_name} is disabled")
        number = payload["number"]
        installation_id = payload["installation"]["id"]
        return Outcome(jobs=[JobSpec(
            MINING_QUEUE, "bot.jobs.mining.mine_pull_request",
            (installation_id, full_name, number), job_id("mine", full_name, number),
            f"mine {full_name}#{number}")])
