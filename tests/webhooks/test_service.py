"""Health, readiness and metrics; and the app served by real gunicorn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue

from bot.runtime import Runtime
from tests.services import RedisServer, free_port, wait_for_port
from tests.webhooks import payloads
from tests.webhooks.conftest import SECRET
from tests.webhooks.test_receive import post


def test_health_and_readiness(client: FlaskClient, redis_server: RedisServer) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    redis_server.stop()
    try:
        answer = client.get("/readyz")
    finally:
        redis_server.start()
    assert answer.status_code == 503
    assert list(answer.get_json()["failed"]) == ["redis"]


def test_metrics_count_deliveries_by_event_and_outcome(client: FlaskClient) -> None:
    post(client, "pull_request", payloads.pull_request())
    post(client, "pull_request", payloads.pull_request(merged=False))
    post(client, "ping", payloads.ping(), secret="wrong")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'davinci_webhook_deliveries{event="pull_request",outcome="enqueued"} 1' in text
    assert 'davinci_webhook_deliveries{event="pull_request",outcome="ignored"} 1' in text
    assert 'davinci_webhook_rejected_total{reason="signature"} 1' in text
    assert "davinci_webhook_request_seconds_count 3" in text
    assert "davinci_enqueue_failures_total 0" in text


def test_served_by_gunicorn(tmp_path: Path, redis_url: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    port = free_port()
    env = {**os.environ, "GITHUB_APP_ID": "4242", "GITHUB_PRIVATE_KEY": key,
           "GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": redis_url,
           "DAVINCI_DATA_DIR": str(tmp_path), "DAVINCI_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "bot.app:create_app()"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
        body = payloads.encode(payloads.pull_request())
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/github", data=body, method="POST",
            headers=payloads.headers("pull_request", body, SECRET, "d-gunicorn"))
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202
            assert json.load(answer)["status"] == "enqueued"
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as exc:  # pragma: no cover - 200 is not an error
            raise AssertionError(exc.code) from exc
        unsigned = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/github", data=body, method="POST",
            headers={"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-x"})
        try:
            urllib.request.urlopen(unsigned, timeout=10)
            raise AssertionError("an unsigned delivery was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    from redis import Redis

    assert len(Queue("davinci-mining", connection=Redis.from_url(redis_url)).job_ids) == 1
    assert key.splitlines()[1] not in output


def test_a_handler_that_fails_marks_the_delivery_failed_and_a_redelivery_retries(
        runtime: Runtime, app: Flask) -> None:
    from bot.models import Delivery
    from handlers import Event, Outcome, Router

    calls: list[str] = []
    router = Router()

    @router.register("ping")
    def flaky(event: Event, session: object) -> Outcome:
        calls.append(event.delivery)
        if len(calls) == 1:
            raise RuntimeError("a bug in a handler")
        return Outcome(note="pong")

    app.extensions["davinci.router"] = router
    client = app.test_client()
    first = post(client, "ping", payloads.ping(), delivery="d-fail")
    assert first.status_code == 500 and first.get_json()["status"] == "failed"
    with runtime.db.session() as session:
        row = session.get(Delivery, "d-fail")
        assert row is not None and row.status == "failed"
        assert row.outcome == "handler failed: RuntimeError"
    again = post(client, "ping", payloads.ping(), delivery="d-fail")
    assert again.status_code == 202 and again.get_json()["note"] == "pong"
    assert calls == ["d-fail", "d-fail"]
    third = post(client, "ping", payloads.ping(), delivery="d-fail")
    assert third.get_json() == {"status": "duplicate", "delivery": "d-fail"}
    assert calls == ["d-fail", "d-fail"], "a duplicate is not routed"
