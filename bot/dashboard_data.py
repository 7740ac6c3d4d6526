"""What the dashboard shows, gathered from the database and Redis as plain JSON-ready data."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from rq import Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import Delivery, Installation, Repository
from bot.runtime import QUEUES, Runtime

RECENT_DELIVERIES = 50
FAILED_JOBS_SHOWN = 20
CHAINS_SHOWN = 100


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
    return [("chains", _chains), ("corpus", _corpus)]


def _chains(session: Session) -> list[dict[str, Any]]:
    from chains.queries import chain_rows

    rows = sorted(chain_rows(session), key=lambda r: (-len(r.prs), r.repository, r.id))
    return [{"id": r.id, "repository": r.repository, "prs": list(r.prs),
             "kinds": list(r.kinds), "eligible": r.eligible} for r in rows[:CHAINS_SHOWN]]


def _corpus(session: Session) -> dict[str, Any]:
    from corpus.stats import corpus_stats

    stats = corpus_stats(session)
    return {**{k: stats[k] for k in ("records", "rejected", "acceptance_rate", "mean_tokens",
                                     "mean_tool_calls")},
            "growth": stats["growth"], "chart": growth_chart(stats["growth"])}


def growth_chart(growth: list[dict[str, Any]], width: int = 480,
                 height: int = 120) -> dict[str, Any] | None:
    """SVG polyline points for cumulative records per day (no script, no build step)."""
    if not growth:
        return None
    top = max(point["records"] for point in growth) or 1
    pad = 24
    steps = max(1, len(growth) - 1)
    points = []
    for index, point in enumerate(growth):
        x = pad + (width - 2 * pad) * index / steps
        y = height - pad - (height - 2 * pad) * point["records"] / top
        points.append(f"{x:.1f},{y:.1f}")
    if len(points) == 1:
        points.append(f"{width - pad:.1f},{points[0].split(',')[1]}")
    labels = [{"x": pad, "y": height - 6, "text": growth[0]["date"]},
              {"x": width - pad - 60, "y": height - 6, "text": growth[-1]["date"]},
              {"x": 2, "y": pad - 8, "text": f"{top} records"}]
    return {"width": width, "height": height, "points": " ".join(points), "labels": labels}


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
        return {"reachable": True, "queues": queues, "failed_jobs": failed_jobs,
                "workers": _workers(runtime)}
    except RedisError as exc:
        return {"reachable": False, "error": type(exc).__name__, "queues": [],
                "failed_jobs": [], "workers": []}


def _workers(runtime: Runtime) -> list[dict[str, Any]]:
    """Every live worker process, on any machine, as rq registers them."""
    workers = []
    for worker in sorted(Worker.all(connection=runtime.redis), key=lambda w: w.name):
        beat = worker.last_heartbeat
        workers.append({"name": worker.name, "host": worker.hostname, "pid": worker.pid,
                        "state": str(worker.get_state()),
                        "queues": worker.queue_names(), "job": worker.get_current_job_id(),
                        "heartbeat": beat.isoformat() if beat else None})
    return workers
