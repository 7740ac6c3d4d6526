"""What the dashboard shows, gathered from the database and Redis as plain JSON-ready data."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import Delivery, Installation, Repository
from bot.runtime import QUEUES, Runtime

RECENT_DELIVERIES = 50
FAILED_JOBS_SHOWN = 20


def collect(runtime: Runtime) -> dict[str, Any]:
    with runtime.db.session() as session:
        data: dict[str, Any] = {
            "installations": _installations(session),
            "repositories": _repositories(session),
            "deliveries": _deliveries(session),
            "delivery_outcomes": _delivery_outcomes(session),
        }
        for name, section in _domain_sections():
            data[name] = section(session)
    data["queues"] = _queues(runtime)
    return data


def _domain_sections() -> list[tuple[str, Any]]:
    """Sections owned by the domain packages, each a function of a session."""
    return []


def _installations(session: Session) -> list[dict[str, Any]]:
    repos = dict(session.execute(
        select(Repository.installation_id, func.count())
        .where(Repository.removed.is_(False)).group_by(Repository.installation_id)).all())
    return [{"id": i.id, "account": i.account_login, "type": i.account_type, "state": i.state,
             "repositories": repos.get(i.id, 0)}
            for i in session.scalars(select(Installation).order_by(Installation.account_login))]


def _repositories(session: Session) -> list[dict[str, Any]]:
    return [{"full_name": r.full_name, "installation": r.installation_id,
             "enabled": r.enabled, "removed": r.removed}
            for r in session.scalars(select(Repository).order_by(Repository.full_name))]


def _deliveries(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(Delivery).order_by(Delivery.received_at.desc())
                           .limit(RECENT_DELIVERIES))
    return [{"id": d.id, "event": d.event, "action": d.action, "repository": d.repository,
             "status": d.status, "outcome": d.outcome, "jobs": list(d.job_ids or []),
             "received_at": d.received_at.isoformat() if d.received_at else None}
            for d in rows]


def _delivery_outcomes(session: Session) -> dict[str, int]:
    return {status: count for status, count in session.execute(
        select(Delivery.status, func.count()).group_by(Delivery.status)).all()}


def _queues(runtime: Runtime) -> dict[str, Any]:
    try:
        queues = []
        failed_jobs = []
        for name in QUEUES:
            queue = runtime.queue(name)
            failed = FailedJobRegistry(queue=queue)
            queues.append({"name": name, "queued": queue.count,
                           "running": StartedJobRegistry(queue=queue).count,
                           "failed": failed.count})
            for job in queue.job_class.fetch_many(failed.get_job_ids(0, FAILED_JOBS_SHOWN - 1),
                                                  connection=runtime.redis):
                if job is None:
                    continue
                result = job.latest_result()
                error = (result.exc_string or "") if result is not None else ""
                failed_jobs.append({"id": job.id, "queue": name, "function": job.func_name,
                                    "error": error.strip().splitlines()[-1:] or [""]})
        return {"reachable": True, "queues": queues, "failed_jobs": failed_jobs}
    except RedisError as exc:
        return {"reachable": False, "error": type(exc).__name__, "queues": [],
                "failed_jobs": []}
