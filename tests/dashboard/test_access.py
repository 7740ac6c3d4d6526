"""Who may see the dashboard, and what the JSON says."""

from __future__ import annotations

from flask import Flask
from rq import Worker

from bot.app import create_app
from bot.runtime import Runtime
from tests.dashboard.conftest import TOKEN


def test_off_when_no_token_is_configured(runtime: Runtime) -> None:
    app = create_app(runtime=Runtime(runtime.settings.with_overrides(dashboard_token=None),
                                     _db=runtime.db))
    client = app.test_client()
    assert client.get("/").status_code == 404
    assert client.get("/api/overview", headers={"Authorization": "Bearer x"}).status_code == 404
    assert client.get("/login").status_code == 404


def test_401_without_credentials_and_403_with_wrong_ones(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/api/overview").status_code == 401
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and b"Dashboard login" in page.data
    assert client.get("/", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 403
    assert client.post("/login", data={"token": "nope"}).status_code == 403


def test_bearer_token_gives_the_data(app: Flask) -> None:
    client = app.test_client()
    answer = client.get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    data = answer.get_json()
    assert data["installations"] == [{"id": 11, "account": "textkit-dev", "type": "Organization",
                                      "state": "active", "repositories": 1}]
    assert [d["id"] for d in data["deliveries"]] == ["d-2", "d-1"]
    assert data["deliveries"][1]["jobs"] == ["mine-textkit-dev-textkit-4"]
    assert data["delivery_outcomes"] == {"enqueued": 1, "ignored": 1}
    assert data["queues"]["reachable"] is True
    assert data["corpus"]["records"] == 3 and data["corpus"]["rejected"] == 1
    assert data["corpus"]["acceptance_rate"] == 0.75
    assert data["corpus"]["mean_tool_calls"] == 6
    assert data["chains"] == [{"id": "1-1-abc", "repository": "textkit-dev/textkit",
                               "prs": [1, 2, 4], "kinds": ["references", "fixes"],
                               "eligible": True,
                               "why": "eligible: 0 of 3 PRs change tests and code",
                               "state": "mined", "state_text": "eligible, not rolled out yet"}]
    assert data["deliveries"][1]["job_statuses"] == [
        {"id": "mine-textkit-dev-textkit-4", "status": "no longer in Redis"}]
    assert {q["name"] for q in data["queues"]["queues"]} == {"davinci-mining", "davinci-rollouts"}
    assert data["queues"]["workers"] == []


def test_workers_on_any_machine_are_listed(app: Flask) -> None:
    runtime = app.extensions["davinci"]
    worker = Worker([runtime.queue("davinci-rollouts")], connection=runtime.redis,
                    name="sandbox-host-1")
    worker.register_birth()
    worker.heartbeat()
    try:
        client = app.test_client()
        data = client.get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}
                          ).get_json()
        [listed] = data["queues"]["workers"]
        assert listed["name"] == "sandbox-host-1" and listed["queues"] == ["davinci-rollouts"]
        assert listed["heartbeat"] is not None
        client.post("/login", data={"token": TOKEN})
        assert b"sandbox-host-1" in client.get("/").data
    finally:
        worker.register_death()


def test_a_browser_logs_in_once_and_keeps_a_session(app: Flask) -> None:
    client = app.test_client()
    login = client.post("/login", data={"token": TOKEN})
    assert login.status_code == 302
    page = client.get("/")
    assert page.status_code == 200
    assert b"textkit-dev/textkit" in page.data and b"davinci-mining" in page.data
    client.post("/logout")
    assert client.get("/api/overview").status_code == 401


def test_redis_down_is_shown_not_a_crash(app: Flask, redis_server) -> None:  # type: ignore[no-untyped-def]
    redis_server.stop()
    try:
        answer = app.test_client().get("/api/overview",
                                       headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        redis_server.start()
    assert answer.status_code == 200
    assert answer.get_json()["queues"]["reachable"] is False
