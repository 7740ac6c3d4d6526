"""Helpers for the end-to-end tests: signed deliveries, worker processes, waiting for work."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import select

from bot.db import Database
from bot.runtime import QUEUES
from bot.sample import SampleRepository
from corpus.store import TrajectoryRow
from tests.webhooks import payloads

SECRET = "e2e-webhook-secret"
INSTALLATION = payloads.INSTALLATION["id"]
REPO = "textkit-dev/textkit"


def deliver(web: str, event: str, payload: dict[str, object], delivery: str,
            expected: int = 202) -> dict[str, object]:
    body = payloads.encode(payload)
    request = urllib.request.Request(f"{web}/webhooks/github", data=body, method="POST",
                                     headers=payloads.headers(event, body, SECRET, delivery))
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == expected
        return json.load(answer)


def install(web: str) -> None:
    installed = payloads.installation("created", repositories=0)
    installed["repositories"] = [{"id": payloads.REPO["id"], "full_name": REPO,
                                  "name": "textkit", "private": False}]
    assert deliver(web, "installation", installed, "d-install")["status"] == "enqueued"


def merged_pr(sample: SampleRepository, number: int) -> dict[str, object]:
    pr = next(p for p in sample.prs if p.number == number)
    payload = payloads.pull_request(number=number, body=pr.body)
    sha = sample.merge_commits[number]
    stamp = subprocess.run(["git", "-C", str(sample.path), "show", "-s", "--format=%ct", sha],
                           capture_output=True, text=True, check=True).stdout.strip()
    merged_at = datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload["pull_request"].update(title=pr.title,  # type: ignore[union-attr]
                                   merge_commit_sha=sha, merged_at=merged_at)
    return payload


def work(env: dict[str, str], *queues: str) -> None:
    """A real worker process that drains the queues and exits."""
    args = [arg for queue in queues for arg in ("--queue", queue)]
    result = subprocess.run([sys.executable, "-m", "bot", "worker", "--burst", *args], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    if os.environ.get("E2E_DEBUG"):
        print(result.stderr[-6000:])


def start_worker(env: dict[str, str], log: Path, *queues: str) -> subprocess.Popen[bytes]:
    """A long-running worker in its own process group (its work horses included)."""
    args = [arg for queue in queues for arg in ("--queue", queue)]
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot", "worker", *args], env=env,
                                stdout=out, stderr=out, start_new_session=True)


def stop_worker(process: subprocess.Popen[bytes], kill: bool = False) -> None:
    """Ask the worker to stop (warm shutdown), or SIGKILL it with every process it started.

    rq's work horse runs in a process group of its own, so killing the worker's process group
    would leave it running: a machine that dies takes all of them. The worker is frozen
    first: rq marks a job started before it forks the horse, and a horse forked after the
    processes were listed would outlive the kill.
    """
    if process.poll() is None:
        if kill:
            os.kill(process.pid, signal.SIGSTOP)
            for pid in descendants(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    process.wait(timeout=60)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def idle(redis: Redis) -> bool:
    """No job queued, running or waiting for a retry on any of our queues."""
    for name in QUEUES:
        queue = Queue(name, connection=redis)
        if queue.count or StartedJobRegistry(queue=queue).get_job_ids() \
                or ScheduledJobRegistry(queue=queue).get_job_ids():
            return False
    return True


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def trajectories(database_url: str) -> list[tuple[int, ...]]:
    """The PR numbers of every chain in the corpus, one entry per stored trajectory."""
    database = Database(database_url)
    try:
        with database.session() as session:
            return sorted(tuple(json.loads(row.document)["chain"]["prs"])
                          for row in session.scalars(select(TrajectoryRow)))
    finally:
        database.dispose()
