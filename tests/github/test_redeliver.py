"""Self-healing: deliveries that never reached us are redelivered through GitHub's API, by
GUID, at most three times, and land in the inbox like the original would have."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from redis import Redis
from rq import Queue
from werkzeug.serving import make_server

from bot.app import create_app
from bot.cli import main
from bot.models import Delivery
from bot.redeliver import redeliver_failed
from bot.runtime import Runtime
from bot.settings import Settings
from tests.github.conftest import WEBHOOK_SECRET as SECRET
from tests.github_sim import GitHubSimulator
from tests.webhooks import payloads


@pytest.fixture
def endpoint(runtime: Runtime, github_sim: GitHubSimulator) -> Iterator[str]:
    """Our webhook endpoint on a real HTTP server, where the simulator redelivers."""
    server = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/webhooks/github"
    github_sim.webhook_url, github_sim.webhook_secret = url, SECRET
    yield url
    server.shutdown()


def jobs(runtime: Runtime) -> list[str]:
    return Queue("davinci-mining", connection=runtime.redis).job_ids


def test_what_never_arrived_is_redelivered_once_and_lands_in_the_inbox(
        runtime: Runtime, github_sim: GitHubSimulator, endpoint: str) -> None:
    now = datetime.now(UTC)
    lost = payloads.pull_request(number=4)
    github_sim.add_hook_delivery("guid-lost", "pull_request", lost, 0, now - timedelta(hours=2))
    fine = payloads.pull_request(number=5)
    github_sim.add_hook_delivery("guid-fine", "pull_request", fine, 202, now - timedelta(hours=1))
    healed = payloads.pull_request(number=6)
    github_sim.add_hook_delivery("guid-healed", "pull_request", healed, 502,
                                 now - timedelta(hours=3))
    github_sim.add_hook_delivery("guid-healed", "pull_request", healed, 202,
                                 now - timedelta(hours=2), redelivery=True)
    old = payloads.pull_request(number=7)
    github_sim.add_hook_delivery("guid-old", "pull_request", old, 500, now - timedelta(days=4))

    report = redeliver_failed(runtime)
    assert report.failed == ["guid-lost"] and report.redelivered == ["guid-lost"]
    assert report.examined == 4, "the delivery older than three days is not looked at"
    [attempt] = github_sim.requests_to("POST", r"^/app/hook/deliveries/\d+/attempts$")
    assert attempt.status == 202
    with runtime.db.session() as session:
        row = session.get(Delivery, "guid-lost")
        assert row is not None and row.status == "enqueued"
    assert len(jobs(runtime)) == 1

    again = redeliver_failed(runtime)  # the redelivery succeeded: nothing left to heal
    assert again.failed == [] and again.redelivered == []
    assert len(github_sim.requests_to("POST", r"/attempts$")) == 1


def test_a_delivery_the_inbox_already_handled_is_not_redelivered(
        runtime: Runtime, github_sim: GitHubSimulator, endpoint: str) -> None:
    payload = payloads.pull_request(number=4)
    with runtime.db.session() as session:
        session.add(Delivery(id="guid-ours", event="pull_request", status="enqueued",
                             payload=json.dumps(payload)))
    github_sim.add_hook_delivery("guid-ours", "pull_request", payload, 0)  # GitHub timed out
    assert redeliver_failed(runtime).failed == []
    assert github_sim.requests_to("POST", r"/attempts$") == []


def test_an_endpoint_that_keeps_failing_is_tried_three_times(
        runtime: Runtime, github_sim: GitHubSimulator) -> None:
    github_sim.webhook_url = "http://127.0.0.1:9/webhooks/github"  # nothing listens
    github_sim.add_hook_delivery("guid-down", "pull_request", payloads.pull_request(), 0)
    reports = [redeliver_failed(runtime) for _ in range(4)]
    assert [r.redelivered for r in reports] == [["guid-down"]] * 3 + [[]]
    assert reports[-1].given_up == ["guid-down"]
    assert len(github_sim.requests_to("POST", r"/attempts$")) == 3


def test_many_pages_are_followed_by_cursor(runtime: Runtime, github_sim: GitHubSimulator,
                                           endpoint: str) -> None:
    for n in range(130):
        github_sim.add_hook_delivery(f"guid-{n}", "pull_request",
                                     payloads.pull_request(number=n + 1), 202)
    github_sim.add_hook_delivery("guid-first", "ping", {"zen": "Keep it simple.",
                                                        "hook_id": 1}, 0,
                                 datetime.now(UTC) - timedelta(minutes=5))
    report = redeliver_failed(runtime)
    assert report.examined == 131 and report.redelivered == ["guid-first"]
    assert len(github_sim.requests_to("GET", r"^/app/hook/deliveries$")) == 2


def test_the_redeliver_command(settings: Settings, runtime: Runtime,
                               github_sim: GitHubSimulator, endpoint: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"GITHUB_APP_ID": settings.github_app_id,
                        "GITHUB_PRIVATE_KEY": settings.github_private_key,
                        "GITHUB_WEBHOOK_SECRET": SECRET, "GITHUB_API_URL": github_sim.url,
                        "REDIS_URL": settings.redis_url,
                        "DATABASE_URL": runtime.db.url}.items():
        monkeypatch.setenv(name, str(value))
    github_sim.add_hook_delivery("guid-cli", "pull_request", payloads.pull_request(), 0)
    result = CliRunner().invoke(main, ["redeliver", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["redelivered"] == ["guid-cli"]
    assert Redis.from_url(settings.redis_url).exists("davinci:redelivered:guid-cli")


def test_workers_heal_at_most_once_per_interval(runtime: Runtime, github_sim: GitHubSimulator,
                                                endpoint: str) -> None:
    from bot.worker import heal

    github_sim.add_hook_delivery("guid-heal", "pull_request", payloads.pull_request(), 0)
    heal(runtime)  # the first worker to get there lists and redelivers
    heal(runtime)  # any other worker within the interval does nothing
    assert len(github_sim.requests_to("GET", r"^/app/hook/deliveries$")) == 1
    assert len(github_sim.requests_to("POST", r"/attempts$")) == 1
    with runtime.db.session() as session:
        assert session.get(Delivery, "guid-heal") is not None
