"""POST /webhooks/github: every bad input, duplicates, routing, and the Redis-down path."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.db import sqlite_path
from bot.models import Delivery, Installation, Repository, utcnow
from bot.queue import enqueue
from bot.runtime import Runtime
from handlers import MINING_QUEUE, Event, JobSpec, Outcome, Router, build_router
from tests.services import RedisServer
from tests.webhooks import payloads
from tests.webhooks.conftest import OLD_SECRET, SECRET


def post(client: FlaskClient, event: str, payload: dict[str, Any] | bytes,
         secret: str | None = SECRET, delivery: str | None = None,
         drop: tuple[str, ...] = ()) -> Any:
    body = payload if isinstance(payload, bytes) else payloads.encode(payload)
    headers = payloads.headers(event, body, secret, delivery)
    for name in drop:
        headers.pop(name)
    return client.post("/webhooks/github", data=body, headers=headers)


def stored(runtime: Runtime) -> int:
    with runtime.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Delivery)) or 0)


def jobs(runtime: Runtime, queue: str = "davinci-mining") -> list[str]:
    return Queue(queue, connection=runtime.redis).job_ids


@pytest.mark.parametrize("secret", [None, "wrong-secret"])
def test_missing_or_wrong_signature_is_401_and_nothing_is_stored(
        client: FlaskClient, runtime: Runtime, secret: str | None) -> None:
    answer = post(client, "pull_request", payloads.pull_request(), secret=secret)
    assert answer.status_code == 401
    assert stored(runtime) == 0 and jobs(runtime) == []


def test_a_signature_over_other_bytes_is_refused(client: FlaskClient, runtime: Runtime) -> None:
    body = payloads.encode(payloads.pull_request())
    headers = payloads.headers("pull_request", body + b" ", SECRET)
    assert client.post("/webhooks/github", data=body, headers=headers).status_code == 401


def test_the_previous_secret_still_works_during_rotation(client: FlaskClient,
                                                         runtime: Runtime) -> None:
    assert post(client, "ping", payloads.ping(), secret=OLD_SECRET).status_code == 202


def test_body_over_25_mib_is_413(client: FlaskClient, runtime: Runtime) -> None:
    body = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    answer = post(client, "ping", body)
    assert answer.status_code == 413
    assert stored(runtime) == 0


@pytest.mark.parametrize("header", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_delivery_headers_are_400(client: FlaskClient, runtime: Runtime,
                                          header: str) -> None:
    answer = post(client, "ping", payloads.ping(), drop=(header,))
    assert answer.status_code == 400
    assert header in answer.get_json()["error"]
    assert stored(runtime) == 0


def test_signed_body_that_is_not_json_is_400(client: FlaskClient, runtime: Runtime) -> None:
    answer = post(client, "pull_request", b"action=closed&number=4")
    assert answer.status_code == 400 and "not JSON" in answer.get_json()["error"]
    assert stored(runtime) == 0 and jobs(runtime) == []


@pytest.mark.parametrize("mutate,message", [
    (lambda p: p.pop("number"), "`number` is missing"),
    (lambda p: p["pull_request"].update(merged="yes"), "`pull_request.merged` must be bool"),
    (lambda p: p.update(repository=[]), "`repository.id` is missing"),
    (lambda p: p.pop("installation"), "`installation.id` is missing"),
])
def test_json_of_the_wrong_shape_is_400_with_the_reason(client: FlaskClient, runtime: Runtime,
                                                        mutate: Any, message: str) -> None:
    payload = payloads.pull_request()
    mutate(payload)
    answer = post(client, "pull_request", payload)
    assert answer.status_code == 400
    assert message in answer.get_json()["error"]
    assert stored(runtime) == 0 and jobs(runtime) == []


def test_a_json_array_is_400(client: FlaskClient, runtime: Runtime) -> None:
    assert post(client, "ping", b"[1, 2]").status_code == 400


def test_merged_pr_becomes_one_mining_job_with_a_deterministic_id(
        client: FlaskClient, runtime: Runtime) -> None:
    answer = post(client, "pull_request", payloads.pull_request(), delivery="d-merged")
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["delivery"] == "d-merged" and body["status"] == "enqueued"
    [job_id] = body["jobs"]
    assert job_id.startswith("mine-textkit-dev-textkit-4-")
    assert jobs(runtime) == [job_id]
    job = Queue("davinci-mining", connection=runtime.redis).fetch_job(job_id)
    assert job is not None and job.func_name == "bot.jobs.mining.mine_pull_request"
    assert job.args == (2311213, "textkit-dev/textkit", 4)
    # The same PR delivered again under another id (a second webhook) is not mined twice.
    again = post(client, "pull_request", payloads.pull_request(), delivery="d-merged-2")
    assert again.get_json()["jobs"] == [job_id]
    assert jobs(runtime) == [job_id]


def test_a_redelivery_is_a_duplicate_and_enqueues_nothing(client: FlaskClient,
                                                          runtime: Runtime) -> None:
    first = post(client, "pull_request", payloads.pull_request(), delivery="d-1")
    assert first.status_code == 202
    Queue("davinci-mining", connection=runtime.redis).empty()
    second = post(client, "pull_request", payloads.pull_request(), delivery="d-1")
    assert second.status_code == 200
    assert second.get_json() == {"status": "duplicate", "delivery": "d-1"}
    assert jobs(runtime) == [] and stored(runtime) == 1


@pytest.mark.parametrize("payload", [
    payloads.pull_request(merged=False),
    payloads.pull_request(action="opened", merged=False),
    payloads.pull_request(action="synchronize", merged=False, body=None),
])
def test_other_pull_request_actions_are_accepted_and_ignored(
        client: FlaskClient, runtime: Runtime, payload: dict[str, Any]) -> None:
    answer = post(client, "pull_request", payload)
    assert answer.status_code == 202
    assert answer.get_json()["status"] == "ignored" and answer.get_json()["jobs"] == []
    assert jobs(runtime) == [] and stored(runtime) == 1


def test_a_disabled_repository_is_not_mined(client: FlaskClient, runtime: Runtime) -> None:
    with runtime.db.session() as session:
        session.add(Repository(id=1296269, full_name="textkit-dev/textkit", enabled=False))
    answer = post(client, "pull_request", payloads.pull_request())
    assert answer.get_json()["status"] == "ignored"
    assert "disabled" in answer.get_json()["note"]
    assert jobs(runtime) == []


def test_unknown_events_are_accepted_recorded_and_ignored(client: FlaskClient,
                                                          runtime: Runtime) -> None:
    answer = post(client, "star", {"action": "created", "starred_at": None})
    assert answer.status_code == 202 and answer.get_json()["status"] == "ignored"
    with runtime.db.session() as session:
        [row] = session.scalars(select(Delivery)).all()
        assert (row.event, row.status) == ("star", "ignored")


def test_ping_is_answered(client: FlaskClient, runtime: Runtime) -> None:
    answer = post(client, "ping", payloads.ping())
    assert answer.status_code == 202 and answer.get_json()["note"] == "pong"


def test_installation_lifecycle_keeps_the_database_right(client: FlaskClient,
                                                         runtime: Runtime) -> None:
    created = post(client, "installation", payloads.installation("created", repositories=2))
    assert created.status_code == 202
    backfills = created.get_json()["jobs"]
    assert len(backfills) == 2 and all(j.startswith("backfill-") for j in backfills)
    with runtime.db.session() as session:
        installation = session.get(Installation, payloads.INSTALLATION["id"])
        assert installation is not None
        assert (installation.account_login, installation.state) == ("textkit-dev", "active")
        names = session.scalars(select(Repository.full_name).order_by(Repository.id)).all()
        assert names == ["textkit-dev/repo0", "textkit-dev/repo1"]
    for action, state in (("suspend", "suspended"), ("unsuspend", "active"),
                          ("new_permissions_accepted", "active"), ("deleted", "deleted")):
        assert post(client, "installation", payloads.installation(action)).status_code == 202
        with runtime.db.session() as session:
            row = session.get(Installation, payloads.INSTALLATION["id"])
            assert row is not None and row.state == state, action
    with runtime.db.session() as session:
        assert all(r.removed for r in session.scalars(select(Repository)))


def test_repositories_added_and_removed(client: FlaskClient, runtime: Runtime) -> None:
    added = post(client, "installation_repositories",
                 payloads.installation_repositories("added", range(3)))
    assert len(added.get_json()["jobs"]) == 3
    post(client, "installation_repositories",
         payloads.installation_repositories("removed", range(1)))
    with runtime.db.session() as session:
        removed = dict(session.execute(select(Repository.full_name, Repository.removed)).all())
    assert removed == {"textkit-dev/more0": True, "textkit-dev/more1": False,
                       "textkit-dev/more2": False}


def test_a_maintainers_command_on_a_pr_becomes_a_job(client: FlaskClient,
                                                     runtime: Runtime) -> None:
    answer = post(client, "issue_comment", payloads.issue_comment("/davinci rollout"))
    [job_id] = answer.get_json()["jobs"]
    job = Queue("davinci-mining", connection=runtime.redis).fetch_job(job_id)
    assert job is not None and job.func_name == "bot.jobs.commands.run_pr_command"
    assert job.args == (2311213, "textkit-dev/textkit", 4, "rollout", 1362934389, "alice")


@pytest.mark.parametrize("comment", [
    payloads.issue_comment(association="CONTRIBUTOR"),
    payloads.issue_comment(association="NONE"),
    payloads.issue_comment(sender_type="Bot", login="davinci-agency[bot]"),
    payloads.issue_comment(on_pull_request=False),
    payloads.issue_comment(body="Thanks, looks good"),
])
def test_comments_that_are_not_maintainer_commands_on_prs_are_ignored(
        client: FlaskClient, runtime: Runtime, comment: dict[str, Any]) -> None:
    answer = post(client, "issue_comment", comment)
    assert answer.status_code == 202 and answer.get_json()["status"] == "ignored"
    assert jobs(runtime) == []


def test_redis_down_keeps_the_delivery_pending_and_the_sweeper_enqueues_it(
        client: FlaskClient, runtime: Runtime, redis_server: RedisServer) -> None:
    redis_server.stop()
    try:
        answer = post(client, "pull_request", payloads.pull_request(), delivery="d-down")
        assert answer.status_code == 202
        assert answer.get_json()["status"] == "pending"
        with runtime.db.session() as session:
            row = session.get(Delivery, "d-down")
            assert row is not None and row.status == "pending" and row.attempts == 1
    finally:
        redis_server.start()
    from bot.webhooks import sweep

    result = sweep(runtime, build_router())
    assert result == {"pending": 1, "processed": 1, "still_pending": 0, "failed": 0,
                      "reopened": 0, "rollouts_recovered": 0}
    assert len(jobs(runtime)) == 1
    with runtime.db.session() as session:
        row = session.get(Delivery, "d-down")
        assert row is not None and row.status == "enqueued"
    assert sweep(runtime, build_router())["pending"] == 0
    assert len(jobs(runtime)) == 1


def test_jobs_lost_with_redis_data_are_enqueued_again_by_the_sweeper(
        client: FlaskClient, runtime: Runtime, redis_server: RedisServer) -> None:
    from bot.webhooks import sweep

    assert sweep(runtime, build_router())["reopened"] == 0  # Redis holds its epoch now
    answer = post(client, "pull_request", payloads.pull_request(), delivery="d-lost")
    assert answer.get_json()["status"] == "enqueued"
    [job_id] = jobs(runtime)
    assert sweep(runtime, build_router())["reopened"] == 0  # nothing lost: nothing reopened
    redis_server.stop()  # no persistence: the restart loses every job
    redis_server.start()
    assert jobs(runtime) == []
    result = sweep(runtime, build_router())
    assert result["reopened"] == 1 and result["processed"] == 1
    assert jobs(runtime) == [job_id]
    with runtime.db.session() as session:
        row = session.get(Delivery, "d-lost")
        assert row is not None and row.status == "enqueued"
    assert sweep(runtime, build_router())["reopened"] == 0
    assert jobs(runtime) == [job_id]


def test_rollouts_lost_with_redis_data_are_enqueued_again_for_chains_without_a_verdict(
        runtime: Runtime, redis_server: RedisServer) -> None:
    from bot.webhooks import sweep
    from chains.store import ChainRow
    from rollout.store import ValidationRow

    assert sweep(runtime, build_router())["rollouts_recovered"] == 0
    with runtime.db.session() as session:
        session.add(ChainRow(id="1-1-waiting", repository="o/r", prs=[1, 2],
                             kinds=["references"], eligible=True))
        session.add(ChainRow(id="3-3-judged", repository="o/r", prs=[3, 5],
                             kinds=["fixes"], eligible=True))
        session.add(ChainRow(id="7-7-short", repository="o/r", prs=[7], kinds=[]))
    with runtime.db.session() as session:
        session.add(ValidationRow(chain_id="3-3-judged", eligible=False,
                                  reason="no failing test", result={}))
    assert sweep(runtime, build_router())["rollouts_recovered"] == 0, "Redis lost nothing"
    redis_server.stop()
    redis_server.start()
    result = sweep(runtime, build_router())
    assert result["rollouts_recovered"] == 1
    assert jobs(runtime, "davinci-rollouts") == ["rollout-1-1-waiting-len2-replay"]


def test_the_sweeper_survives_what_it_did_not_expect(runtime: Runtime) -> None:
    """A round that fails in a way no one planned for (here: a queue that is not one) is
    logged, and the next round still runs."""
    import threading

    from structlog.testing import capture_logs

    from bot.worker import start_sweeper

    stop = threading.Event()
    with capture_logs() as logs:
        thread = start_sweeper(runtime, [None], every=0.05, stop=stop)  # type: ignore[list-item]
        deadline = time.monotonic() + 10
        while sum(e["event"] == "sweep.failed" for e in logs) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = thread.is_alive()
        stop.set()
        thread.join(timeout=5)
    failed = [e for e in logs if e["event"] == "sweep.failed"]
    assert alive and len(failed) >= 3
    assert failed[0]["error"] == "AttributeError" and failed[0]["log_level"] == "error"
    assert not thread.is_alive(), "a set stop ends the sweeper"


def test_an_enqueued_delivery_is_recorded_with_its_jobs_when_it_is_answered(
        client: FlaskClient, runtime: Runtime) -> None:
    answer = post(client, "pull_request", payloads.pull_request(), delivery="d-order")
    [job_id] = answer.get_json()["jobs"]
    with runtime.db.session() as session:  # what a mining job reads when it starts
        row = session.get(Delivery, "d-order")
        assert row is not None and (row.event, row.action) == ("pull_request", "closed")
        assert row.repository == "textkit-dev/textkit"
        row = session.get(Delivery, "d-order")
        assert row is not None and (row.status, row.job_ids, row.attempts) == (
            "enqueued", [job_id], 0)


def test_the_sweeper_finishing_a_delivery_whose_jobs_were_enqueued_adds_no_job(
        client: FlaskClient, runtime: Runtime) -> None:
    """A process that died after enqueueing, before it marked the row, leaves it pending."""
    from bot.webhooks import sweep

    post(client, "pull_request", payloads.pull_request(), delivery="d-early")
    with runtime.db.engine.begin() as connection:
        connection.execute(update(Delivery).where(Delivery.id == "d-early").values(
            status="pending", job_ids=[]))
    assert sweep(runtime, build_router())["processed"] == 1
    assert len(jobs(runtime)) == 1
    with runtime.db.session() as session:
        row = session.get(Delivery, "d-early")
        assert row is not None and row.status == "enqueued" and row.job_ids == jobs(runtime)


def another_writer(runtime: Runtime) -> sqlite3.Connection:
    """Another process's connection to the database, in a write transaction at once: it
    raises `database is locked` while anyone holds SQLite's writer."""
    path = sqlite_path(runtime.db.url)
    assert path is not None
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    return connection


def test_the_jobs_are_enqueued_after_the_delivery_and_its_handlers_writes_are_committed(
        app: Flask, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job reads the inbox and what the handler wrote, so both are there when it is
    pushed; and no one holds SQLite's writer during the handler's work or the round trip
    to Redis."""
    from bot import webhooks

    router = Router()

    @router.register("ping")
    def records_a_repository(event: Event, session: Session) -> Outcome:
        another_writer(runtime).close()
        session.add(Repository(id=7, full_name="textkit-dev/seven"))
        return Outcome(jobs=[JobSpec(MINING_QUEUE, "builtins.print", (7,), "job-seven")])

    seen: list[tuple[str, list[str], str]] = []

    def observed_enqueue(redis: Redis, spec: JobSpec) -> bool:
        writer = another_writer(runtime)
        status, job_ids = writer.execute("SELECT status, job_ids FROM webhook_deliveries "
                                         "WHERE id = 'd-order'").fetchone()
        [name] = writer.execute("SELECT full_name FROM repositories WHERE id = 7").fetchone()
        writer.close()
        seen.append((status, json.loads(job_ids), name))
        return enqueue(redis, spec)

    monkeypatch.setattr(webhooks, "enqueue", observed_enqueue)
    app.extensions["davinci.router"] = router
    answer = post(app.test_client(), "ping", payloads.ping(), delivery="d-order")
    assert answer.status_code == 202 and answer.get_json()["status"] == "enqueued"
    assert seen == [("enqueued", ["job-seven"], "textkit-dev/seven")]
    assert jobs(runtime) == ["job-seven"]


class ProcessKilled(BaseException):
    """Raised where a process dies: nothing after that point runs."""


def test_a_delivery_whose_process_died_before_enqueueing_is_enqueued_by_the_sweeper(
        client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot import webhooks

    assert webhooks.sweep(runtime, build_router())["reopened"] == 0  # it has run before

    def killed(redis: Redis, spec: JobSpec) -> bool:
        raise ProcessKilled

    monkeypatch.setattr(webhooks, "enqueue", killed)
    with pytest.raises(ProcessKilled):
        post(client, "pull_request", payloads.pull_request(), delivery="d-killed")
    monkeypatch.undo()
    with runtime.db.session() as session:
        row = session.get(Delivery, "d-killed")
        assert row is not None and row.status == "enqueued" and len(row.job_ids) == 1
        job_ids = row.job_ids
    assert jobs(runtime) == []
    # A delivery younger than a request can take may still be on its way: left to it.
    assert webhooks.sweep(runtime, build_router())["reopened"] == 0
    assert jobs(runtime) == []
    with runtime.db.engine.begin() as connection:  # a minute and a half later
        connection.execute(update(Delivery).where(Delivery.id == "d-killed").values(
            received_at=utcnow() - timedelta(seconds=90)))
    result = webhooks.sweep(runtime, build_router())
    assert (result["reopened"], result["processed"], result["still_pending"]) == (1, 1, 0)
    assert jobs(runtime) == job_ids
    with runtime.db.session() as session:
        row = session.get(Delivery, "d-killed")
        assert row is not None and (row.status, row.job_ids) == ("enqueued", job_ids)
    assert webhooks.sweep(runtime, build_router())["reopened"] == 0
    assert jobs(runtime) == job_ids


def test_a_delivery_finished_after_a_sweep_listed_it_is_not_routed_again(
        client: FlaskClient, runtime: Runtime) -> None:
    """Two sweeps at once (a worker's and `davinci sweep`) list the same pending delivery:
    the one that comes to it after the other finished it leaves it alone."""
    from bot.webhooks import DuplicateDelivery, process

    post(client, "pull_request", payloads.pull_request(), delivery="d-swept")
    calls: list[str] = []
    router = Router()

    @router.register("pull_request")
    def counted(event: Event, session: Session) -> Outcome:
        calls.append(event.delivery)
        return Outcome()

    with pytest.raises(DuplicateDelivery):
        process(runtime, router, "d-swept")
    assert calls == []
    with runtime.db.session() as session:
        row = session.get(Delivery, "d-swept")
        assert row is not None and row.status == "enqueued"
