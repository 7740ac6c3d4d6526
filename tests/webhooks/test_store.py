"""The request path's own statements (bot.prepared) on SQLite and PostgreSQL: what they write
reads back as the ORM's rows, a redelivery is still found by the database, and the driver's
errors are SQLAlchemy's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.app import create_app
from bot.db import Database
from bot.models import Delivery, Repository
from bot.prepared import Prepared, transaction
from bot.runtime import MINING_QUEUE, Runtime
from bot.settings import Settings
from bot.webhooks import flush
from handlers import Event, JobSpec, Outcome, Router
from tests.webhooks import payloads
from tests.webhooks.conftest import SECRET


@pytest.fixture
def runtime(tmp_path: Path, redis_url: str, database: Database) -> Runtime:
    return Runtime(Settings(redis_url=redis_url, data_dir=tmp_path, webhook_secrets=(SECRET,)),
                   _db=database)


def post(runtime: Runtime, payload: dict[str, object], delivery: str) -> tuple[int, dict]:
    app = create_app(runtime=runtime)
    body = payloads.encode(payload)
    answer = app.test_client().post("/webhooks/github", data=body,
                                    headers=payloads.headers("pull_request", body, SECRET,
                                                             delivery))
    flush(app)
    return answer.status_code, answer.get_json()


def test_a_delivery_is_stored_as_the_orm_reads_it_and_a_redelivery_is_a_duplicate(
        runtime: Runtime) -> None:
    before = datetime.now(UTC)
    status, body = post(runtime, payloads.pull_request(number=7), "d-store")
    assert (status, body["status"]) == (202, "enqueued")
    with runtime.db.session() as session:
        row = session.get(Delivery, "d-store")
        assert row is not None
        assert (row.event, row.action, row.installation_id, row.repository) == (
            "pull_request", "closed", 2311213, "textkit-dev/textkit")
        assert (row.status, row.job_ids, row.attempts, row.outcome) == (
            "enqueued", body["jobs"], 0, None)
        received = row.received_at if row.received_at.tzinfo else row.received_at.replace(
            tzinfo=UTC)  # SQLite keeps no time zone; the value is UTC
        assert before - timedelta(seconds=1) <= received <= datetime.now(UTC)
    assert post(runtime, payloads.pull_request(number=7), "d-store") == (
        200, {"status": "duplicate", "delivery": "d-store"})
    assert Queue("davinci-mining", connection=runtime.redis).job_ids == body["jobs"]


def test_a_disabled_repository_is_read_in_the_requests_transaction(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        session.add(Repository(id=payloads.REPO["id"], full_name="textkit-dev/textkit",
                               enabled=False))
    status, body = post(runtime, payloads.pull_request(), "d-disabled")
    assert (status, body["status"], body["jobs"]) == (202, "ignored", [])
    assert body["note"] == "textkit-dev/textkit is disabled"


def test_the_drivers_errors_are_sqlalchemys_and_roll_back(runtime: Runtime) -> None:
    columns = ("id", "full_name", "private", "enabled", "removed", "updated_at")
    add = Prepared(insert(Repository.__table__).values({c: bindparam(c) for c in columns}))
    values = {"id": 1, "full_name": "o/r", "private": False, "enabled": True, "removed": False,
              "updated_at": datetime.now(UTC)}
    with runtime.db.engine.connect() as connection:
        with transaction(connection):
            add.run(connection, values)
        with pytest.raises(IntegrityError), transaction(connection):
            add.run(connection, {**values, "id": 2, "full_name": "o/other"})
            add.run(connection, values)
    with runtime.db.session() as session:
        assert [r.full_name for r in session.query(Repository)] == ["o/r"]


@pytest.mark.parametrize("before", ["new", "failed"])
def test_a_delivery_another_process_records_while_this_one_routes_it_is_a_duplicate(
        runtime: Runtime, before: str) -> None:
    """The same delivery id twice at once (a redelivery racing the original, or two
    redeliveries of one that failed): the one that records it second answers `duplicate`,
    enqueues nothing and keeps none of its handler's writes."""
    router = Router()
    calls: list[str] = []

    @router.register("ping")
    def racing(event: Event, session: Session) -> Outcome:
        calls.append(event.delivery)
        if before == "failed" and len(calls) == 1:
            raise RuntimeError("a bug in a handler")
        recorded_elsewhere(runtime, event.delivery)
        session.add(Repository(id=8, full_name="textkit-dev/eight"))
        return Outcome(jobs=[JobSpec(MINING_QUEUE, "builtins.print", (8,), "job-eight")])

    app = create_app(runtime=runtime)
    app.extensions["davinci.router"] = router
    client = app.test_client()
    body = payloads.encode(payloads.ping())

    def deliver() -> Any:
        return client.post("/webhooks/github", data=body,
                           headers=payloads.headers("ping", body, SECRET, "d-race"))

    if before == "failed":
        assert deliver().status_code == 500
    answer = deliver()
    flush(app)
    assert (answer.status_code, answer.get_json()) == (
        200, {"status": "duplicate", "delivery": "d-race"})
    assert Queue(MINING_QUEUE, connection=runtime.redis).job_ids == []
    with runtime.db.session() as session:
        assert session.query(Repository).count() == 0
        row = session.get(Delivery, "d-race")
        assert row is not None and (row.status, row.outcome) == ("ignored", "done elsewhere")


def recorded_elsewhere(runtime: Runtime, delivery: str) -> None:
    """Another process records ``delivery`` (inserts it, or finishes the failed row)."""
    with runtime.db.session() as session:
        if session.get(Delivery, delivery) is None:
            session.add(Delivery(id=delivery, event="ping", payload="{}", status="ignored",
                                 outcome="done elsewhere"))
        else:
            session.execute(update(Delivery).where(Delivery.id == delivery).values(
                status="ignored", outcome="done elsewhere"))
