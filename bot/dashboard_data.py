"""What the dashboard shows, gathered from the database and Redis as plain JSON-ready data."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import Delivery, Installation, Repository
from bot.runtime import QUEUES, Runtime
from rollout.state import minute, run_state
from rollout.store import RolloutRunRow

RECENT_DELIVERIES = 50
FAILED_JOBS_SHOWN = 20
CHAINS_SHOWN = 100
ROLLOUTS_SHOWN = 50


def collect(runtime: Runtime) -> dict[str, Any]:
    with runtime.db.session() as session:
        data: dict[str, Any] = {
            "installations": _installations(session),
            "repositories": _repositories(session),
            "deliveries": _deliveries(session, runtime.redis),
            "delivery_outcomes": _delivery_outcomes(session),
        }
        for name, section in _domain_sections():
            data[name] = section(session)
    data["queues"] = _queues(runtime)
    return data


def _domain_sections() -> list[tuple[str, Any]]:
    """Sections owned by the domain packages, each a function of a session."""
    return [("chains", _chains), ("rollouts", _rollouts), ("funnel", _funnel),
            ("corpus", _corpus)]


def _chains(session: Session) -> list[dict[str, Any]]:
    from chains.queries import chain_document, chain_rows
    from rollout.state import chain_states, mining_reasons

    rows = sorted(chain_rows(session), key=lambda r: (-len(r.prs), r.repository, r.id))
    shown = rows[:CHAINS_SHOWN]
    documents = [chain_document(session, row) for row in shown]
    states = chain_states(session, shown, mining_reasons(documents))
    return [{"id": r.id, "repository": r.repository, "prs": list(r.prs),
             "kinds": list(r.kinds), "eligible": r.eligible, "why": doc["why"],
             "state": states[r.id].name, "state_text": states[r.id].describe()}
            for r, doc in zip(shown, documents, strict=True)]


def _rollouts(session: Session) -> list[dict[str, Any]]:
    from bot.runs import run_views
    from rollout.store import recent_runs

    return [view.to_json() for view in run_views(session, recent_runs(session, ROLLOUTS_SHOWN))]


def _funnel(session: Session) -> list[dict[str, Any]]:
    """Per repository: chains mined -> eligible (mining) -> rolled out -> environment built ->
    eligible -> accepted."""
    from bot.funnel import repository_funnel
    from chains.queries import chain_rows
    from rollout.state import chain_states

    rows = chain_rows(session)
    states = chain_states(session, rows)
    by_repository = defaultdict(list)
    for row in rows:
        by_repository[row.repository].append(row)
    return [repository_funnel(name, chains, states).to_json()
            for name, chains in sorted(by_repository.items())]


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


def _deliveries(session: Session, redis: Redis) -> list[dict[str, Any]]:
    rows = list(session.scalars(select(Delivery).order_by(Delivery.received_at.desc())
                                .limit(RECENT_DELIVERIES)))
    statuses = job_statuses(session, redis, [job for d in rows for job in d.job_ids or []])
    return [{"id": d.id, "event": d.event, "action": d.action, "repository": d.repository,
             "status": d.status, "outcome": d.outcome, "jobs": list(d.job_ids or []),
             "job_statuses": [{"id": job, "status": statuses[job]} for job in d.job_ids or []],
             "received_at": d.received_at.isoformat() if d.received_at else None}
            for d in rows]


def job_statuses(session: Session, redis: Redis, job_ids: list[str]) -> dict[str, str]:
    """Where each job is now, in words: a rollout job by its run (`rollout.state`), any other
    by rq (queued, running, retrying at …, failed: why, finished)."""
    runs = {row.id: row for row in session.scalars(
        select(RolloutRunRow).where(RolloutRunRow.id.in_(set(job_ids))))}
    statuses = {job_id: run_state(runs[job_id]).describe() for job_id in job_ids
                if job_id in runs}
    others = [job_id for job_id in dict.fromkeys(job_ids) if job_id not in runs]
    try:
        jobs = Job.fetch_many(others, connection=redis)
        statuses.update({job_id: _rq_status(job) if job is not None else "no longer in Redis"
                         for job_id, job in zip(others, jobs, strict=True)})
    except RedisError as exc:
        statuses.update(dict.fromkeys(others, f"unknown (Redis: {type(exc).__name__})"))
    return statuses


def _rq_status(job: Job) -> str:
    status = job.get_status(refresh=False)
    if status == JobStatus.SCHEDULED:
        when = ScheduledJobRegistry(job.origin, connection=job.connection) \
            .get_scheduled_time(job)
        return f"retrying at {minute(when)}"
    if status == JobStatus.FAILED:
        return f"failed: {_last_error(job)}"
    if status == JobStatus.STARTED:
        return "running"
    return str(status.value if status is not None else "unknown")


def _last_error(job: Job) -> str:
    result = job.latest_result()
    error = (result.exc_string or "") if result is not None else ""
    lines = error.strip().splitlines()
    return lines[-1] if lines else "no error recorded"


def _delivery_outcomes(session: Session) -> dict[str, int]:
    return {status: count for status, count in session.execute(
        select(Delivery.status, func.count()).group_by(Delivery.status)).all()}


def _queues(runtime: Runtime) -> dict[str, Any]:
    try:
        queues = []
        failed_jobs: list[dict[str, Any]] = []
        retrying_jobs: list[dict[str, Any]] = []
        for name in QUEUES:
            queue = runtime.queue(name)
            failed = FailedJobRegistry(queue=queue)
            scheduled = ScheduledJobRegistry(queue=queue)
            queues.append({"name": name, "queued": queue.count,
                           "running": StartedJobRegistry(queue=queue).count,
                           "retrying": scheduled.count, "failed": failed.count})
            for job in queue.job_class.fetch_many(failed.get_job_ids(0, FAILED_JOBS_SHOWN - 1),
                                                  connection=runtime.redis):
                if job is not None:
                    failed_jobs.append({"id": job.id, "queue": name, "function": job.func_name,
                                        "error": _last_error(job)})
            for job in queue.job_class.fetch_many(
                    scheduled.get_job_ids(0, FAILED_JOBS_SHOWN - 1), connection=runtime.redis):
                if job is not None:
                    retrying_jobs.append({"id": job.id, "queue": name, "function": job.func_name})
        with runtime.db.session() as session:  # rq keeps no error of a retried job; a run does
            statuses = job_statuses(session, runtime.redis, [j["id"] for j in retrying_jobs])
        for job_row in retrying_jobs:
            job_row["status"] = statuses[job_row["id"]]
        return {"reachable": True, "queues": queues, "failed_jobs": failed_jobs,
                "retrying_jobs": retrying_jobs, "workers": _workers(runtime)}
    except RedisError as exc:
        return {"reachable": False, "error": type(exc).__name__, "queues": [],
                "failed_jobs": [], "retrying_jobs": [], "workers": []}


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
