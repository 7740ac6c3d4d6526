"""The whole loop with real processes: gunicorn, an rq worker, Redis, the database, the GitHub
simulator and the sandbox. Signed deliveries go in; trajectories and status comments come out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.sample import SampleRepository, build_sample_repository
from corpus.store import TrajectoryRow
from sandbox.factory import docker_available
from tests.github_sim import GitHubSimulator
from tests.services import free_port, wait_for_port
from tests.webhooks import payloads

SECRET = "e2e-webhook-secret"
INSTALLATION = payloads.INSTALLATION["id"]
REPO = "textkit-dev/textkit"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[GitHubSimulator, SampleRepository]]:
    sample = build_sample_repository(tmp_path / "origin" / "textkit")
    sim = GitHubSimulator().start()
    sim.add_installation(INSTALLATION, "textkit-dev")
    sim.add_repo("textkit-dev", "textkit", sample.path, INSTALLATION)
    for number, (title, body) in sample.issues.items():
        sim.add_issue(REPO, number, title, body)
    yield sim, sample
    sim.stop()


@pytest.fixture
def env(world: tuple[GitHubSimulator, SampleRepository], redis_url: str,
        tmp_path: Path) -> dict[str, str]:
    sim, _ = world
    backend = "docker" if os.environ.get("CI") == "true" or docker_available() else "local"
    return {**os.environ, "GITHUB_APP_ID": str(sim.app_id),
            "GITHUB_PRIVATE_KEY": sim.private_key_pem, "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_API_URL": sim.url, "REDIS_URL": redis_url,
            "DAVINCI_DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'davinci.db'}",
            "DAVINCI_SANDBOX": backend, "DAVINCI_LOG_FORMAT": "json"}


@pytest.fixture
def web(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                                "--workers", "2", "bot.app:create_app()"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, timeout=30)
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def deliver(web: str, event: str, payload: dict[str, object], delivery: str,
            expected: int = 202) -> dict[str, object]:
    body = payloads.encode(payload)
    request = urllib.request.Request(f"{web}/webhooks/github", data=body, method="POST",
                                     headers=payloads.headers(event, body, SECRET, delivery))
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == expected
        return json.load(answer)


def work(env: dict[str, str]) -> None:
    """A real worker process that drains the queues and exits."""
    result = subprocess.run([sys.executable, "-m", "bot", "worker", "--burst"], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    if os.environ.get("E2E_DEBUG"):
        print(result.stderr[-6000:])


def merged_pr(sample: SampleRepository, number: int) -> dict[str, object]:
    pr = next(p for p in sample.prs if p.number == number)
    payload = payloads.pull_request(number=number, body=pr.body)
    payload["pull_request"].update(title=pr.title,  # type: ignore[union-attr]
                                   merge_commit_sha=sample.merge_commits[number])
    return payload


@pytest.mark.slow
def test_deliveries_in_trajectories_and_status_comments_out(
        world: tuple[GitHubSimulator, SampleRepository], env: dict[str, str],
        web: str) -> None:
    sim, sample = world
    installed = payloads.installation("created", repositories=0)
    installed["repositories"] = [{"id": payloads.REPO["id"], "full_name": REPO,
                                  "name": "textkit", "private": False}]
    assert deliver(web, "installation", installed, "d-install")["status"] == "enqueued"
    work(env)  # the backfill finds no merged PR yet
    for pr in sample.prs:  # merged one after another, as GitHub would tell us
        sim.add_pull(REPO, pr.number, sample.merge_commits[pr.number], pr.title, pr.body,
                     author=pr.author, labels=pr.labels, closes=pr.closes)
        answer = deliver(web, "pull_request", merged_pr(sample, pr.number), f"d-{pr.number}")
        assert answer["status"] == "enqueued" and len(answer["jobs"]) == 1  # type: ignore
        work(env)
    database = Database(env["DATABASE_URL"])
    with database.session() as session:
        chains_before = session.scalars(select(TrajectoryRow)).all()
        chains = sorted({tuple(json.loads(row.document)["chain"]["prs"])
                         for row in chains_before})
    assert (1, 2, 4) in chains and (3, 5, 6) in chains
    final = [c.body for c in sim.comments_on(REPO, 4)]
    assert len(final) == 1, "one status comment per PR, edited in place"
    assert "#1 → #2 → **#4**" in final[0] and "accepted with score 1.00" in final[0]
    assert "`fixes`" in final[0]
    for number in (1, 2, 3, 5, 6, 7):
        assert len(sim.comments_on(REPO, number)) == 1
    docs = sim.comments_on(REPO, 7)[0].body
    assert "has not joined a chain yet" in docs
    # A redelivered merge webhook changes nothing.
    again = deliver(web, "pull_request", merged_pr(sample, 4), "d-4", expected=200)
    assert again == {"status": "duplicate", "delivery": "d-4"}
    work(env)
    with database.session() as session:
        assert len(session.scalars(select(TrajectoryRow)).all()) == len(chains_before)
