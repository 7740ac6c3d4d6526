"""`davinci run`: mine, roll out every chain in parallel, resume, report the funnel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.funnel import funnel, reason_kind
from bot.sample import build_sample_repository


def test_the_funnel_counts_each_step_and_why_chains_were_lost() -> None:
    verdicts = [
        {"accepted": True, "eligible": True, "reason": ""},
        {"accepted": False, "eligible": True, "reason": "score 0.50 below 0.80"},
        {"accepted": False, "eligible": False,
         "reason": "no verifiable stage (PR #3: tests do not run: …)"},
        {"accepted": False, "eligible": False,
         "reason": "the environment could not be built: install command 'pip …' exited"},
        {"accepted": False, "eligible": False,
         "reason": "the environment could not be built: install command 'pip x' exited"},
    ]
    report = funnel(verdicts, {"mining": 1.0, "rollouts": 9.0}, environments_built=1)
    assert [(s.name, s.count) for s in report.steps] == [
        ("chains", 5), ("environment built", 3), ("eligible", 2), ("accepted", 1)]
    assert sum(report.steps[1].lost.values()) == 2
    assert report.steps[2].lost == {"no verifiable stage: tests do not run": 1}
    assert report.steps[3].lost == {"score N below N": 1}
    assert (report.environments_built, report.environments_reused) == (1, 2)
    assert reason_kind("PR #12: gold patch does not apply: x") == "gold patch does not apply"


@pytest.mark.slow
def test_run_rolls_out_every_chain_and_resumes(tmp_path: Path) -> None:
    sample = build_sample_repository(tmp_path / "textkit")
    env = {**os.environ, "DAVINCI_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "bot", "run", "--git", str(sample.path), "--workers", "2"]
    first = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env,
                           timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(first.stdout)
    steps = [(s["name"], s["count"]) for s in report["funnel"]["steps"]]
    assert steps == [("chains", 2), ("environment built", 2), ("eligible", 2), ("accepted", 2)]
    assert all(v["accepted"] and v["record_id"] for v in report["verdicts"])
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 rolled out before, 0 to roll out" in again.stderr
    assert "accepted" in again.stdout and "Funnel of" in again.stdout


def test_run_via_rq_without_a_worker_says_what_to_start(tmp_path: Path, redis_url: str) -> None:
    sample = build_sample_repository(tmp_path / "textkit")
    env = {**os.environ, "DAVINCI_DATA_DIR": str(tmp_path / "data"), "REDIS_URL": redis_url}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "bot", "run", "--git", str(sample.path),
                             "--via", "rq"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 1
    assert "no worker listens on davinci-rollouts" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_run_through_rq_workers(tmp_path: Path, redis_url: str) -> None:
    """With a worker listening, every chain is a job the worker rolls out; the command hears
    the verdicts and reports the same funnel."""
    from redis import Redis
    from rq import Queue, Worker
    from rq.registry import FinishedJobRegistry

    sample = build_sample_repository(tmp_path / "textkit")
    env = {**os.environ, "DAVINCI_DATA_DIR": str(tmp_path / "data"), "REDIS_URL": redis_url}
    env.pop("DATABASE_URL", None)
    redis = Redis.from_url(redis_url)
    queue = Queue("davinci-rollouts", connection=redis)
    worker = subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not Worker.all(queue=queue):
            assert worker.poll() is None and time.monotonic() < deadline, "no worker came up"
            time.sleep(0.5)
        done = subprocess.run([sys.executable, "-m", "bot", "run", "--git", str(sample.path),
                               "--json"], capture_output=True, text=True, env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
        steps = [(s["name"], s["count"]) for s in report["funnel"]["steps"]]
        assert steps == [("chains", 2), ("environment built", 2), ("eligible", 2),
                         ("accepted", 2)]
        finished = FinishedJobRegistry(queue=queue).get_job_ids()
        assert len(finished) == 2  # the worker did them, not a pool here
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a process whose parent died is reaped by whoever adopts it,
    which in a container may be no one)."""
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _sandboxes_of(engine: object, pids: set[int]) -> list[str]:
    return [c.name for c in engine.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": "davinci.sandbox"})
        if int(c.labels.get("davinci.owner", ":0").rsplit(":", 1)[1] or 0) in pids]


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_run_stopped_midway_leaves_no_sandbox_or_process_and_resumes(
        tmp_path: Path, how: signal.Signals) -> None:
    """SIGTERM stops `davinci run` as Ctrl-C does: its pool processes unwind their rollouts
    (sandboxes removed) and exit, and it says so. Killed outright (SIGKILL), its pool
    processes notice, do the same and exit instead of waiting for work forever. Either way
    a second run rolls out every chain."""
    import docker

    engine = docker.from_env()
    sample = build_sample_repository(tmp_path / "textkit")
    env = {**os.environ, "DAVINCI_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "bot", "run", "--git", str(sample.path), "--workers", "2",
               "--via", "local"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env)
    deadline = time.monotonic() + 600
    while not _sandboxes_of(engine, children := _children(run.pid)):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
        time.sleep(0.2)
    run.send_signal(how)
    _, stderr = run.communicate(timeout=300)  # the pool processes hold its pipes until they end
    assert run.returncode == (130 if how == signal.SIGTERM else -signal.SIGKILL), stderr[-3000:]
    if how == signal.SIGTERM:
        assert "interrupted: stopped after 0 of 2 chains; run again to go on" in stderr
        assert "Traceback" not in stderr
    deadline = time.monotonic() + 30
    while (alive := [pid for pid in children if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == [], "pool processes left running"
    assert _sandboxes_of(engine, children | {run.pid}) == []
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 rolled out before, 2 to roll out" in again.stderr
    assert again.stderr.count(": ACCEPTED") == 2


def test_funnel_reasons_group_chains_and_read_as_words() -> None:
    """Reasons of different chains fall in one group, and the group reads as words."""
    lost = "no test fails before the gold patch and passes after it"
    one = f"only 1 of 2 stages verifiable, 2 needed (PR #1028: {lost})"
    two = f"only 2 of 4 stages verifiable, 3 needed (PR #7: {lost}; PR #9: tests do not run)"
    assert reason_kind(one) == reason_kind(two) == f"too few stages verifiable: {lost}"
    assert reason_kind("no verifiable stage (PR #9: tests do not run: the stage has no test "
                       "files to run)") == "no verifiable stage: tests do not run"
