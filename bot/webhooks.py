"""`POST /webhooks/github`: verify, record once, route, enqueue; answer in milliseconds.

Order of checks: signature (401) before anything is read into the inbox, then the delivery
headers (400), the body (400), the inbox (a delivery id it holds answers 200 `duplicate`),
routing through the handler registry, the delivery's row with what routing decided, and
enqueueing. When Redis cannot be reached the delivery is kept `pending` in the inbox and the
sweeper enqueues it later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from flask import Blueprint, current_app, request
from redis.exceptions import RedisError
from rq.job import Job
from sqlalchemy import Connection, Row, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.metrics import Recorder
from bot.models import Delivery, utcnow
from bot.prepared import Prepared, transaction
from bot.queue import enqueue
from bot.runtime import Runtime
from handlers import Event, JobSpec, Outcome, PayloadError, Router, build_router

EPOCH_KEY = "davinci:epoch"
CHECKED_KEY = "davinci:inbox:checked"
"""Until when (a Unix time) the jobs of enqueued deliveries were found in Redis."""
LOST_WINDOW = timedelta(days=1)
SETTLE = timedelta(minutes=1)
"""A request records and enqueues a delivery well within this (GitHub gives up after 10 s),
and the hosts' clocks agree within it: the sweeper leaves younger deliveries to their
requests, and starts each check this much before the last one ended."""
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
RECORD_DELIVERY = Prepared(UPDATE_DELIVERY.where(INBOX.c.status == bindparam("found")))
"""A delivery the inbox held, recorded only if no other process recorded it meanwhile."""
COUNT_ATTEMPT = Prepared(UPDATE_DELIVERY.values(attempts=INBOX.c.attempts + 1))
FIND_STATUS = Prepared(select(INBOX.c.status).where(INBOX.c.id == bindparam("delivery")))
FIND_DELIVERY = select(INBOX.c.event, INBOX.c.payload, INBOX.c.status).where(
    INBOX.c.id == bindparam("delivery"))
REOPEN_DELIVERY = update(INBOX).where(
    INBOX.c.id == bindparam("delivery"), INBOX.c.status == "enqueued").values(
    status="pending", outcome="its jobs were not in Redis; enqueued again")
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


@dataclass(frozen=True)
class Found:
    """A delivery to work: its event, its raw body when the inbox does not hold it yet, and
    the status the inbox holds it in (None: not there), which recording it expects to find
    unchanged."""

    event: Event
    raw: bytes | None
    status: str | None


def process(runtime: Runtime, router: Router, delivery_id: str,
            new: tuple[Event, bytes] | None = None) -> Processed:
    """Find, route, record, enqueue; safe to run again (the sweeper does).

    With ``new`` (the event and its raw body) the delivery comes from GitHub: an id the inbox
    already holds is a DuplicateDelivery and is not routed, unless it failed before (then it
    is worked again). Without, it is read from the inbox while pending (the sweeper).

    The lookup, the handler's writes and the delivery's row, with its final status and its
    jobs, commit in one short transaction before the jobs are enqueued (the jobs read them).
    On SQLite its first write takes the writer (the handler's rows, flushed once it returned,
    or the delivery's row) and the commit right after releases it: it is never held across a
    handler's work or a Redis round trip. A crash before the commit leaves nothing: GitHub
    got no answer, and the delivery is redelivered. A crash between the commit and the
    enqueue leaves the row `enqueued` without its jobs in Redis: the sweeper checks the jobs
    of the deliveries it has not checked yet and works those without them again (a job
    already enqueued is known and not pushed twice). When Redis cannot be reached the row is
    set back to `pending`, for the sweeper.
    """
    with runtime.db.engine.connect() as connection:
        try:
            with connection.begin():
                found = _found(connection, delivery_id, new)
                outcome = _route(router, found.event, connection)
                routed = _routed(outcome)
                _record(connection, found, routed)
        except HandlerFailed as exc:  # its writes were rolled back; the delivery is kept
            return _record_failure(connection, found, exc.note)  # as `failed`
        if not outcome.jobs:
            return routed
        failure = _enqueue(runtime, delivery_id, outcome.jobs)
        if failure is None:
            return routed
        return _keep_pending(connection, delivery_id, routed, failure)


def _found(connection: Connection, delivery_id: str, new: tuple[Event, bytes] | None,
           ) -> Found:
    """The delivery, new or read from the inbox; a DuplicateDelivery when the inbox holds it
    already, unless it failed (or, read from the inbox, when it is no longer pending)."""
    if new is None:
        stored = _stored(connection, delivery_id)
        if stored.status != "pending":
            raise DuplicateDelivery(delivery_id)
        return stored
    event, raw = new
    held = FIND_STATUS.run(connection, {"delivery": delivery_id}).fetchone()
    if held is not None and held[0] != "failed":
        raise DuplicateDelivery(delivery_id)
    return Found(event, raw, None if held is None else held[0])


def _stored(connection: Connection, delivery_id: str) -> Found:
    found = connection.execute(FIND_DELIVERY, {"delivery": delivery_id}).first()
    if found is None:
        raise LookupError(f"delivery {delivery_id} is not in the inbox")
    return Found(Event(found.event, delivery_id, json.loads(found.payload)), None, found.status)


def _route(router: Router, event: Event, connection: Connection) -> Outcome:
    """The handlers' outcome, their writes flushed into the connection's transaction;
    HandlerFailed when one of them raised."""
    if not router.knows(event.name):
        return Outcome(note=f"event {event.name} is not handled")
    with Session(bind=connection) as session:
        try:
            outcome = router.dispatch(event, session)
            session.flush()
        except Exception as exc:  # a handler's bug must not lose the delivery
            log.exception("webhook.handler_failed", delivery=event.delivery)
            raise HandlerFailed(f"handler failed: {type(exc).__name__}") from exc
    return outcome


def _routed(outcome: Outcome) -> Processed:
    """`enqueued` with the ids of its jobs, or `ignored` when it named none."""
    return Processed("enqueued" if outcome.jobs else "ignored",
                     tuple(job.job_id for job in outcome.jobs), outcome.note)


def _record(connection: Connection, found: Found, processed: Processed) -> None:
    """The delivery's row as ``processed`` says: inserted when new, else updated if its
    status is still the one it was found in; a DuplicateDelivery when another process
    recorded it first."""
    values = {"delivery": found.event.delivery, "status": processed.status,
              "outcome": processed.note or None, "job_ids": list(processed.jobs)}
    if found.status is not None:
        if RECORD_DELIVERY.run(connection, {**values, "found": found.status}).rowcount != 1:
            raise DuplicateDelivery(found.event.delivery)
        return
    assert found.raw is not None, "a delivery not in the inbox comes with its body"
    try:
        INSERT_DELIVERY.run(connection, _row(found.event, found.raw, processed))
    except IntegrityError as exc:  # the same delivery, received twice at once
        raise DuplicateDelivery(found.event.delivery) from exc


def _record_failure(connection: Connection, found: Found, note: str) -> Processed:
    failed = Processed("failed", (), note)
    with transaction(connection):
        _record(connection, found, failed)
    return failed


def _enqueue(runtime: Runtime, delivery_id: str, specs: list[JobSpec]) -> str | None:
    """Enqueue every job; None, or why not when Redis cannot be reached."""
    try:
        for spec in specs:
            enqueue(runtime.redis, spec)
    except RedisError as exc:
        log.warning("webhook.enqueue_failed", delivery=delivery_id, error=type(exc).__name__)
        return f"enqueue failed ({type(exc).__name__}); the sweeper will retry"
    return None


def _keep_pending(connection: Connection, delivery_id: str, routed: Processed,
                  reason: str) -> Processed:
    """Redis is down: the delivery back to `pending` with one more attempt and the reason,
    for the sweeper."""
    pending = Processed("pending", routed.jobs)
    with transaction(connection):
        COUNT_ATTEMPT.run(connection, {"delivery": delivery_id, "status": pending.status,
                                       "outcome": reason, "job_ids": list(pending.jobs)})
    return pending


def flush(app: Any) -> None:
    """Write this process's counts for /metrics now."""
    app.extensions["davinci.metrics"].flush()


def _row(event: Event, raw: bytes, processed: Processed) -> dict[str, Any]:
    """A new delivery's row, as ``processed`` says."""
    installation = event.payload.get("installation")
    repository = event.payload.get("repository")
    return {"id": event.delivery, "event": event.name, "action": event.action,
            "installation_id": installation.get("id") if isinstance(installation, dict) else None,
            "repository": repository.get("full_name") if isinstance(repository, dict) else None,
            "status": processed.status, "outcome": processed.note or None,
            "job_ids": list(processed.jobs), "payload": raw.decode("utf-8"),
            "received_at": utcnow(), "attempts": 0}


def sweep(runtime: Runtime, router: Router, limit: int = 500) -> dict[str, int]:
    """Enqueue deliveries still pending (Redis was down, or a process died mid-way).

    First, enqueued deliveries whose jobs Redis does not know become pending again: those
    received since the last sweep (a process died between recording a delivery and
    enqueueing its jobs), or, if Redis lost its data (restarted without persistence, or
    flushed), those of the last day, and then rollouts that mining jobs had enqueued for
    chains still without a verdict are enqueued again.
    """
    lost = redis_lost_data(runtime)
    reopened = check_enqueued(runtime, lost)
    rollouts = []
    if lost:
        from bot.jobs.rollouts import recover_lost_rollouts

        rollouts = recover_lost_rollouts(runtime)
    with runtime.db.session() as session:
        ids = _pending(session, limit)
    done = failed = 0
    for delivery_id in ids:
        try:
            result = process(runtime, router, delivery_id)
        except DuplicateDelivery:  # recorded by another process meanwhile
            done += 1
            continue
        if result.status == "pending":
            failed += 1
            break  # Redis is still down; try again at the next sweep
        done += 1
    return {"pending": len(ids), "processed": done, "still_pending": len(ids) - done,
            "failed": failed, "reopened": reopened, "rollouts_recovered": len(rollouts)}


def redis_lost_data(runtime: Runtime) -> bool:
    """True once after Redis lost what we gave it (or is new): its epoch key is missing."""
    return bool(runtime.redis.set(EPOCH_KEY, str(int(time.time())), nx=True))


def check_enqueued(runtime: Runtime, lost: bool) -> int:
    """Reopen the enqueued deliveries not checked yet whose jobs Redis does not know; how
    many. Each check starts a little before the last one ended and leaves the newest
    deliveries to their requests. When Redis lost its data (its mark is gone with it), every
    delivery of the last day is checked, the newest too."""
    now = utcnow()
    mark = None if lost else runtime.redis.get(CHECKED_KEY)
    if mark is None:
        since, through = now - LOST_WINDOW, now
    else:
        since, through = datetime.fromtimestamp(float(mark), UTC) - SETTLE, now - SETTLE
    reopened = reopen_lost(runtime, since, through)
    runtime.redis.set(CHECKED_KEY, str(through.timestamp()))
    return reopened


def reopen_lost(runtime: Runtime, since: datetime, through: datetime) -> int:
    """Set the deliveries received from ``since`` through ``through`` that are enqueued but
    whose jobs Redis does not know back to pending; how many.

    Jobs stay known for a day after they finish (their result), so a job that ran is not run
    again; one that is run again is harmless, since mining is idempotent.
    """
    with runtime.db.engine.begin() as connection:
        rows = connection.execute(select(INBOX.c.id, INBOX.c.job_ids).where(
            INBOX.c.status == "enqueued", INBOX.c.received_at >= since,
            INBOX.c.received_at <= through)).all()
    lost = _without_jobs(runtime, rows)  # no transaction open across the round trip
    if lost:
        with runtime.db.engine.begin() as connection:
            connection.execute(REOPEN_DELIVERY, [{"delivery": d} for d in lost])
        log.warning("webhook.reopened", deliveries=len(lost))
    return len(lost)


def _without_jobs(runtime: Runtime, rows: Sequence[Row[str, list[str]]]) -> list[str]:
    """The ids of ``rows`` (id, job ids) with a job Redis does not know, asked in one round
    trip."""
    with runtime.redis.pipeline(transaction=False) as pipe:
        for row in rows:
            for job in row.job_ids:
                pipe.exists(Job.key_for(job))
        known = iter(pipe.execute())
    return [row.id for row in rows if not all([next(known) for _ in row.job_ids])]


def _pending(session: Session, limit: int) -> list[str]:
    return list(session.scalars(select(Delivery.id).where(Delivery.status == "pending")
                                .order_by(Delivery.received_at).limit(limit)))


def install(app: Any, runtime: Runtime) -> None:
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["davinci.router"] = build_router()
    app.extensions["davinci.metrics"] = Recorder(runtime)
    app.register_blueprint(blueprint)
