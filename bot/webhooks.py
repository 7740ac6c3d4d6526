"""`POST /webhooks/github`: verify, record once, route, enqueue; answer in milliseconds.

Order of checks: signature (401) before anything is read into the inbox, then the delivery
headers (400), the body (400), the inbox insert (a repeated delivery id answers 200
`duplicate`), routing through the handler registry, and enqueueing. When Redis cannot be
reached the delivery stays `pending` in the inbox and the sweeper enqueues it later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from flask import Blueprint, current_app, request
from redis.exceptions import RedisError
from rq.job import Job
from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.metrics import Recorder
from bot.models import Delivery, utcnow
from bot.prepared import Prepared, transaction
from bot.queue import enqueue
from bot.runtime import Runtime
from handlers import Event, JobSpec, Outcome, PayloadError, Router, build_router

EPOCH_KEY = "davinci:epoch"
LOST_WINDOW = timedelta(days=1)
MAX_BODY = 25 * 1024 * 1024
"""GitHub caps payloads at 25 MB."""
INBOX: Table = Delivery.__table__  # type: ignore[assignment]
ROW = tuple(INBOX.c.keys())
"""Every column of the inbox: the INSERT below bypasses the columns' defaults, so `_row`
gives each one."""
# The request path's statements, compiled once per dialect and run on the driver's cursor.
INSERT_DELIVERY = Prepared(insert(INBOX).values({name: bindparam(name) for name in ROW}))
UPDATE_DELIVERY = update(INBOX).where(INBOX.c.id == bindparam("delivery")).values(
    status=bindparam("status"), outcome=bindparam("outcome"), job_ids=bindparam("job_ids"))
FINISH_DELIVERY = Prepared(UPDATE_DELIVERY)
COUNT_ATTEMPT = Prepared(UPDATE_DELIVERY.values(attempts=INBOX.c.attempts + 1))
FIND_STATUS = Prepared(select(INBOX.c.status).where(INBOX.c.id == bindparam("delivery")))
FIND_DELIVERY = select(INBOX.c.event, INBOX.c.payload).where(INBOX.c.id == bindparam("delivery"))
log = structlog.get_logger()
blueprint = Blueprint("webhooks", __name__)


def verify_signature(body: bytes, header: str | None, secrets: tuple[str, ...]) -> bool:
    """HMAC-SHA256 of the raw body against every configured secret, in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    given = header[len("sha256="):].strip().encode()
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        matched |= hmac.compare_digest(expected, given)
    return matched


def _answer(http_status: int, /, **body: Any) -> tuple[dict[str, Any], int]:
    return body, http_status


@blueprint.post("/webhooks/github")
def receive() -> tuple[dict[str, Any], int]:
    started = time.perf_counter()
    runtime: Runtime = current_app.extensions["davinci"]
    router: Router = current_app.extensions["davinci.router"]
    recorder: Recorder = current_app.extensions["davinci.metrics"]
    try:
        body, status = _receive(runtime, router, recorder)
    finally:
        recorder.observe_latency(time.perf_counter() - started)
    return body, status


def _receive(runtime: Runtime, router: Router, recorder: Recorder,
             ) -> tuple[dict[str, Any], int]:
    if (request.content_length or 0) > MAX_BODY:
        return _answer(413, error="payload larger than 25 MiB")
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY:
        return _answer(413, error="payload larger than 25 MiB")
    if not verify_signature(raw, request.headers.get("X-Hub-Signature-256"),
                            runtime.settings.webhook_secrets):
        recorder.count_rejected("signature")
        return _answer(401, error="missing or wrong X-Hub-Signature-256")
    name = request.headers.get("X-GitHub-Event", "").strip()
    delivery_id = request.headers.get("X-GitHub-Delivery", "").strip()
    if not name or not delivery_id:
        missing = [h for h, v in (("X-GitHub-Event", name), ("X-GitHub-Delivery", delivery_id))
                   if not v]
        return _answer(400, error=f"missing header {', '.join(missing)}")
    if len(delivery_id) > 64:
        return _answer(400, error="X-GitHub-Delivery is longer than 64 characters")
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _answer(400, error=f"body is not JSON: {exc}")
    if not isinstance(payload, dict):
        return _answer(400, error="body must be a JSON object")
    event = Event(name, delivery_id, payload)
    try:
        router.validate(event)
    except PayloadError as exc:
        return _answer(400, error=f"{name} payload: {exc}")
    bound = log.bind(delivery=delivery_id, github_event=name, action=event.action)
    try:
        result = process(runtime, router, delivery_id, new=(event, raw))
    except DuplicateDelivery:
        bound.info("webhook.duplicate")
        return _answer(200, status="duplicate", delivery=delivery_id)
    bound.info("webhook.accepted", status=result.status, jobs=list(result.jobs))
    if result.status == "failed":
        # A 500 marks the delivery failed on GitHub, so it can be redelivered.
        return _answer(500, delivery=delivery_id, **result.to_json())
    return _answer(202, delivery=delivery_id, **result.to_json())


class DuplicateDelivery(Exception):
    """The inbox already holds this delivery id."""


class HandlerFailed(Exception):
    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


@dataclass(frozen=True)
class Processed:
    """What became of a delivery: `enqueued`, `pending` (Redis was down), `ignored` or
    `failed` (its handler raised), with the ids of the jobs it named."""

    status: str
    jobs: tuple[str, ...] = ()
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "jobs": list(self.jobs),
                **({"note": self.note} if self.note else {})}


def process(runtime: Runtime, router: Router, delivery_id: str,
            new: tuple[Event, bytes] | None = None) -> Processed:
    """Record, route, enqueue, finish; safe to run again (the sweeper does).

    With ``new`` (the event and its raw body) the delivery comes from GitHub and is inserted
    into the inbox as `pending`, alone in its transaction: an id already there is a
    DuplicateDelivery and is not routed, unless it failed before (then it is worked again).
    Without, it is read from the inbox (the sweeper). The handler's writes commit before its
    jobs are enqueued (the jobs read them, and the delivery's row), and each write is short:
    SQLite's single writer is never held across a handler or a Redis round trip. A crash at
    any point leaves the delivery pending, and the sweeper routes it again (a job already
    enqueued is known and not pushed twice). One UPDATE finishes it: `enqueued`, with the ids
    of its jobs, before it is answered.
    """
    with runtime.db.engine.connect() as connection:
        event = _record(connection, new) if new is not None else _stored(connection, delivery_id)
        try:
            with connection.begin(), Session(bind=connection) as session:
                outcome = _route(router, event, session)
                routed = Processed("pending" if outcome.jobs else "ignored",
                                   tuple(job.job_id for job in outcome.jobs), outcome.note)
                if not outcome.jobs:  # finished with the handler's writes
                    _update(connection, delivery_id, routed)
        except HandlerFailed as exc:  # its writes were rolled back; the delivery is kept
            failed = Processed("failed", (), exc.note)
            with transaction(connection):
                _update(connection, delivery_id, failed)
            return failed
        if not outcome.jobs:
            return routed
        failure = _enqueue(runtime, delivery_id, outcome.jobs)
        if failure is not None:  # Redis is down: the sweeper tries again
            with transaction(connection):
                _update(connection, delivery_id, routed, failed_enqueue=True, outcome=failure)
            return Processed("pending", routed.jobs)
        enqueued = Processed("enqueued", routed.jobs, routed.note)
        with transaction(connection):
            _update(connection, delivery_id, enqueued)
        return enqueued


def _record(connection: Connection, new: tuple[Event, bytes]) -> Event:
    """Insert a new delivery, `pending`; a failed one already there is worked again, any
    other is a DuplicateDelivery."""
    event, raw = new
    try:
        with transaction(connection):
            INSERT_DELIVERY.run(connection, _row(event, raw))
    except IntegrityError as exc:
        with transaction(connection):
            found = FIND_STATUS.run(connection, {"delivery": event.delivery}).fetchone()
        if found is None or found[0] != "failed":
            raise DuplicateDelivery(event.delivery) from exc
    return event


def _stored(connection: Connection, delivery_id: str) -> Event:
    with connection.begin():
        found = connection.execute(FIND_DELIVERY, {"delivery": delivery_id}).first()
    if found is None:
        raise LookupError(f"delivery {delivery_id} is not in the inbox")
    return Event(found.event, delivery_id, json.loads(found.payload))


def _route(router: Router, event: Event, session: Session) -> Outcome:
    """The handlers' outcome, their writes flushed into the transaction; HandlerFailed when
    one of them raised."""
    if not router.knows(event.name):
        return Outcome(note=f"event {event.name} is not handled")
    try:
        outcome = router.dispatch(event, session)
        session.flush()
    except Exception as exc:  # a handler's bug must not lose the delivery
        log.exception("webhook.handler_failed", delivery=event.delivery)
        raise HandlerFailed(f"handler failed: {type(exc).__name__}") from exc
    return outcome


def _enqueue(runtime: Runtime, delivery_id: str, specs: list[JobSpec]) -> str | None:
    """Enqueue every job; None, or why not when Redis cannot be reached."""
    try:
        for spec in specs:
            enqueue(runtime.redis, spec)
    except RedisError as exc:
        log.warning("webhook.enqueue_failed", delivery=delivery_id, error=type(exc).__name__)
        return f"enqueue failed ({type(exc).__name__}); the sweeper will retry"
    return None


def _update(connection: Connection, delivery_id: str, processed: Processed,
            failed_enqueue: bool = False, outcome: str | None = None) -> None:
    """The delivery's row as ``processed`` says; ``failed_enqueue`` counts an attempt;
    ``outcome``: kept instead of the processed note."""
    statement = COUNT_ATTEMPT if failed_enqueue else FINISH_DELIVERY
    statement.run(connection, {"delivery": delivery_id, "status": processed.status,
                               "outcome": outcome or processed.note or None,
                               "job_ids": list(processed.jobs)})


def flush(app: Any) -> None:
    """Write this process's counts for /metrics now."""
    app.extensions["davinci.metrics"].flush()


def _row(event: Event, raw: bytes) -> dict[str, Any]:
    """A new delivery's row, `pending`."""
    installation = event.payload.get("installation")
    repository = event.payload.get("repository")
    return {"id": event.delivery, "event": event.name, "action": event.action,
            "installation_id": installation.get("id") if isinstance(installation, dict) else None,
            "repository": repository.get("full_name") if isinstance(repository, dict) else None,
            "status": "pending", "outcome": None, "job_ids": [], "payload": raw.decode("utf-8"),
            "received_at": utcnow(), "attempts": 0}


def sweep(runtime: Runtime, router: Router, limit: int = 500) -> dict[str, int]:
    """Enqueue deliveries still pending (Redis was down, or a process died mid-way).

    First, if Redis lost its data (restarted without persistence, or flushed), deliveries of
    the last day whose jobs vanished with it become pending again, and rollouts that mining
    jobs had enqueued for chains still without a verdict are enqueued again.
    """
    reopened, rollouts = 0, []
    if redis_lost_data(runtime):
        from bot.jobs.rollouts import recover_lost_rollouts

        reopened = reopen_lost(runtime)
        rollouts = recover_lost_rollouts(runtime)
    with runtime.db.session() as session:
        ids = _pending(session, limit)
    done = failed = 0
    for delivery_id in ids:
        result = process(runtime, router, delivery_id)
        if result.status == "pending":
            failed += 1
            break  # Redis is still down; try again at the next sweep
        done += 1
    return {"pending": len(ids), "processed": done, "still_pending": len(ids) - done,
            "failed": failed, "reopened": reopened, "rollouts_recovered": len(rollouts)}


def redis_lost_data(runtime: Runtime) -> bool:
    """True once after Redis lost what we gave it (or is new): its epoch key is missing."""
    return bool(runtime.redis.set(EPOCH_KEY, str(int(time.time())), nx=True))


def reopen_lost(runtime: Runtime, window: timedelta = LOST_WINDOW) -> int:
    """Set enqueued deliveries whose jobs Redis no longer knows back to pending; how many.

    Called when Redis lost its data. Jobs stay known for a day after they finish (their
    result), so a job that ran is not run again; one that is run again is harmless, since
    mining is idempotent.
    """
    reopened = 0
    with runtime.db.session() as session:
        rows = session.scalars(select(Delivery).where(
            Delivery.status == "enqueued", Delivery.received_at >= utcnow() - window)).all()
        with runtime.redis.pipeline(transaction=False) as pipe:  # one round trip for all
            for row in rows:
                for job in row.job_ids:
                    pipe.exists(Job.key_for(job))
            known = iter(pipe.execute())
        for row in rows:
            if not all([next(known) for _ in row.job_ids]):
                row.status = "pending"
                row.outcome = "its jobs were lost with Redis' data; enqueued again"
                reopened += 1
    if reopened:
        log.warning("webhook.reopened_after_redis_data_loss", deliveries=reopened)
    return reopened


def _pending(session: Session, limit: int) -> list[str]:
    return list(session.scalars(select(Delivery.id).where(Delivery.status == "pending")
                                .order_by(Delivery.received_at).limit(limit)))


def install(app: Any, runtime: Runtime) -> None:
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["davinci.router"] = build_router()
    app.extensions["davinci.metrics"] = Recorder(runtime)
    app.register_blueprint(blueprint)
