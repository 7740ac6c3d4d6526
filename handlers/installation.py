"""`installation` and `installation_repositories`: which accounts and repositories opted in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.models import Installation, Repository
from handlers import MINING_QUEUE, Event, JobSpec, Outcome, PayloadError, Router, job_id, require

STATES = {"created": "active", "unsuspend": "active", "new_permissions_accepted": "active",
          "suspend": "suspended", "deleted": "deleted"}


def register(router: Router) -> None:
    @router.shape("installation")
    def installation_shape(payload: dict[str, Any]) -> None:
        require(payload, "action", str)
        require(payload, "installation.id", int)
        require(payload, "installation.account.login", str)
        _repositories(payload, "repositories")

    @router.shape("installation_repositories")
    def repositories_shape(payload: dict[str, Any]) -> None:
        require(payload, "action", str)
        require(payload, "installation.id", int)
        _repositories(payload, "repositories_added")
        _repositories(payload, "repositories_removed")

    for action in STATES:
        router.register("installation", action)(on_installation)
    router.register("installation_repositories", "added")(on_repositories_added)
    router.register("installation_repositories", "removed")(on_repositories_removed)


def on_installation(event: Event, session: Session) -> Outcome:
    payload = event.payload
    installation = _upsert_installation(session, payload)
    installation.state = STATES[event.action or ""]
    if event.action == "deleted":
        session.execute(update(Repository).where(Repository.installation_id == installation.id)
                        .values(removed=True))
        return Outcome(note=f"installation {installation.id} deleted")
    if event.action != "created":
        return Outcome(note=f"installation {installation.id} {installation.state}")
    repos = [_upsert_repository(session, installation.id, r)
             for r in _repositories(payload, "repositories")]
    return Outcome(jobs=[_backfill(installation.id, r) for r in repos],
                   note=f"installation {installation.id} created with {len(repos)} repositories")


def on_repositories_added(event: Event, session: Session) -> Outcome:
    installation = _upsert_installation(session, event.payload)
    repos = [_upsert_repository(session, installation.id, r)
             for r in _repositories(event.payload, "repositories_added")]
    return Outcome(jobs=[_backfill(installation.id, r) for r in repos],
                   note=f"{len(repos)} repositories added")


def on_repositories_removed(event: Event, session: Session) -> Outcome:
    _upsert_installation(session, event.payload)
    removed = _repositories(event.payload, "repositories_removed")
    for data in removed:
        repo = session.get(Repository, data["id"])
        if repo is not None:
            repo.removed = True
    return Outcome(note=f"{len(removed)} repositories removed")


def _repositories(payload: dict[str, Any], key: str) -> list[dict[str, Any]]:
    repos = payload.get(key) or []
    if not isinstance(repos, list):
        raise PayloadError(f"`{key}` must be a list")
    for index, repo in enumerate(repos):
        if not isinstance(repo, dict):
            raise PayloadError(f"`{key}[{index}]` must be an object")
        require(repo, "id", int)
        require(repo, "full_name", str)
    return repos


def _upsert_installation(session: Session, payload: dict[str, Any]) -> Installation:
    data = payload["installation"]
    installation = session.get(Installation, data["id"])
    if installation is None:
        installation = Installation(id=data["id"])
        session.add(installation)
    account = data.get("account") or {}
    installation.account_login = account.get("login") or installation.account_login or "unknown"
    installation.account_type = account.get("type") or installation.account_type or "User"
    if isinstance(data.get("permissions"), dict):
        installation.permissions = data["permissions"]
    return installation


def _upsert_repository(session: Session, installation_id: int,
                       data: dict[str, Any]) -> Repository:
    repo = session.get(Repository, data["id"])
    if repo is None:
        # A repository renamed or transferred keeps its id; its old name must not block it.
        stale = session.scalar(select(Repository).where(Repository.full_name == data["full_name"]))
        if stale is not None:
            session.delete(stale)
            session.flush()
        repo = Repository(id=data["id"], full_name=data["full_name"])
        session.add(repo)
    repo.full_name = data["full_name"]
    repo.installation_id = installation_id
    repo.private = bool(data.get("private", False))
    repo.removed = False
    return repo


def _backfill(installation_id: int, repo: Repository) -> JobSpec:
    return JobSpec(MINING_QUEUE, "bot.jobs.mining.backfill_repository",
                   (installation_id, repo.full_name),
                   job_id("backfill", repo.full_name),
                   f"backfill {repo.full_name}")
