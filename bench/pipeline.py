"""The whole pipeline under load: signed deliveries in, verified trajectories out.

Several copies of the sample repository sit behind the GitHub simulator. For 1, 2 and 4
worker processes (sharing one Redis and one PostgreSQL, as on several machines), every merged
PR of every copy is delivered to the app under gunicorn, in two timed phases that do the same
work for every worker count: first the workers mine (they listen to the mining queue only,
and the clock runs until every PR is mined); then they roll out what mining enqueued (the
clock runs until the rollout queue is empty). Were both to run at once, how many
intermediate chains (1 → 2 before 1 → 2 → 4) are rolled out would depend on how fast mining
outran the rollouts, and the worker counts would compare unequal work. Prints, per worker
count and phase, seconds and the work done (PRs mined, rollouts run, trajectories stored),
the rates, and the speed-up over one worker measured in the same run; a worker count that did
other work than one worker is flagged. Replay policy; Docker sandbox when an engine answers.
Mining is serialised per repository, so the copies are what several workers can share.

    python3 bench/pipeline.py [--repos 4] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402
from rq.registry import (  # noqa: E402
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from sqlalchemy import create_engine, text  # noqa: E402

from bot.runtime import MINING_QUEUE, ROLLOUT_QUEUE  # noqa: E402
from bot.sample import SampleRepository, build_sample_repository  # noqa: E402
from sandbox.factory import docker_available  # noqa: E402
from tests.e2e.loop import (  # noqa: E402
    INSTALLATION,
    SECRET,
    deliver,
    merged_pr,
    start_worker,
    stop_worker,
    trajectories,
    wait_for,
)
from tests.github_sim import GitHubSimulator  # noqa: E402
from tests.services import RedisServer, free_port, postgres_server, wait_for_port  # noqa: E402
from tests.webhooks import payloads  # noqa: E402

OWNER = "textkit-dev"


def repository(index: int) -> dict[str, Any]:
    name = f"textkit-{index}"
    return {**payloads.REPO, "id": 5000 + index, "name": name, "full_name": f"{OWNER}/{name}"}


def fresh_database(server_url: str, name: str) -> str:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def quiet(redis: Redis, name: str) -> bool:
    """No job of queue ``name`` waiting, running or scheduled for a retry."""
    queue = Queue(name, connection=redis)
    return not (queue.count or StartedJobRegistry(queue=queue).get_job_ids()
                or ScheduledJobRegistry(queue=queue).get_job_ids())


def done(redis: Redis, name: str) -> tuple[int, int]:
    """(jobs finished, jobs failed) of queue ``name``."""
    queue = Queue(name, connection=redis)
    return (FinishedJobRegistry(queue=queue).count, FailedJobRegistry(queue=queue).count)


def run(workers: int, sample: SampleRepository, repos: int, base_env: dict[str, str],
        database_url: str, scratch: Path) -> dict[str, Any]:
    data = scratch / f"data-{workers}"
    env = {**base_env, "DATABASE_URL": database_url, "DAVINCI_DATA_DIR": str(data)}
    redis = Redis.from_url(env["REDIS_URL"])
    redis.flushall()
    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                            "--workers", "2", "bot.app:create_app()"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, timeout=30)
    url = f"http://127.0.0.1:{port}"
    log = scratch / f"worker-{workers}.log"
    processes = [start_worker(env, log, MINING_QUEUE) for _ in range(workers)]
    try:
        time.sleep(2.0)  # let the workers register before the clock starts
        started = time.perf_counter()
        for pr in sample.prs:  # merge order, each repository in turn
            for index in range(repos):
                payload = merged_pr(sample, pr.number)
                payload["repository"] = repository(index)
                deliver(url, "pull_request", payload, f"d-{workers}-{index}-{pr.number}")
        wait_for(lambda: quiet(redis, MINING_QUEUE), 1800, f"{workers} worker(s) to mine",
                 every=0.2)
        mining = time.perf_counter() - started
        for process in processes:
            stop_worker(process)
        queued = Queue(ROLLOUT_QUEUE, connection=redis).count
        processes = [start_worker(env, log, ROLLOUT_QUEUE) for _ in range(workers)]
        time.sleep(2.0)
        started = time.perf_counter()
        wait_for(lambda: quiet(redis, ROLLOUT_QUEUE), 1800, f"{workers} worker(s) to roll out",
                 every=0.5)
        rollouts = time.perf_counter() - started
    finally:
        for process in processes:
            stop_worker(process)
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)
    mined, mining_failed = done(redis, MINING_QUEUE)
    rolled, rollout_failed = done(redis, ROLLOUT_QUEUE)
    stored = trajectories(database_url)
    return {"workers": workers, "mining_seconds": mining, "rollout_seconds": rollouts,
            "seconds": mining + rollouts, "prs_mined": mined, "mining_failed": mining_failed,
            "rollouts_queued": queued, "rollouts_run": rolled, "rollouts_failed": rollout_failed,
            "trajectories": len(stored), "chains": sorted({len(t) for t in stored}),
            "prs_per_minute": 60 * mined / mining, "rollouts_per_minute": 60 * rolled / rollouts,
            "trajectories_per_minute": 60 * len(stored) / rollouts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=4,
                        help="copies of the sample repository (independent mining work)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="davinci-bench-pipeline-"))
    redis_server = RedisServer()
    redis_server.start()
    sim = GitHubSimulator().start()
    try:
        sample = build_sample_repository(scratch / "origin" / "textkit")
        sim.add_installation(INSTALLATION, OWNER)
        for index in range(args.repos):
            name = repository(index)["name"]
            sim.add_repo(OWNER, name, sample.path, INSTALLATION)
            for number, (title, body) in sample.issues.items():
                sim.add_issue(f"{OWNER}/{name}", number, title, body)
            for pr in sample.prs:
                sim.add_pull(f"{OWNER}/{name}", pr.number, sample.merge_commits[pr.number],
                             pr.title, pr.body, author=pr.author, labels=pr.labels,
                             closes=pr.closes)
        backend = "docker" if docker_available() else "local"
        env = {**os.environ, "GITHUB_APP_ID": str(sim.app_id),
               "GITHUB_PRIVATE_KEY": sim.private_key_pem, "GITHUB_WEBHOOK_SECRET": SECRET,
               "GITHUB_API_URL": sim.url, "REDIS_URL": redis_server.url,
               "DAVINCI_SANDBOX": backend, "DAVINCI_LOG_FORMAT": "json",
               "DAVINCI_LOG_LEVEL": "warning"}
        print(f"pipeline: {args.repos} repositories x {len(sample.prs)} PRs, {backend} sandbox, "
              f"{os.cpu_count()} CPUs", file=sys.stderr)
        results = []
        with postgres_server() as server:
            for workers in counts:
                database = fresh_database(server, f"bench_{workers}")
                result = run(workers, sample, args.repos, env, database, scratch)
                results.append(result)
                print(f"  {workers} worker(s): mined {result['prs_mined']} PRs "
                      f"({result['mining_failed']} failed) in {result['mining_seconds']:.1f} s, "
                      f"ran {result['rollouts_run']} of {result['rollouts_queued']} rollouts "
                      f"queued ({result['rollouts_failed']} failed; {result['trajectories']} "
                      f"trajectories stored, chains of {result['chains']} PRs) in "
                      f"{result['rollout_seconds']:.1f} s", file=sys.stderr)
        base = results[0]
        work = ("prs_mined", "rollouts_run", "trajectories")
        for result in results:
            for phase in ("mining_seconds", "rollout_seconds", "seconds"):
                result[f"speedup_{phase}"] = base[phase] / result[phase]
            result["same_work"] = all(result[k] == base[k] for k in work)
        if args.json:
            print(json.dumps(results))
        else:
            print(f"{'workers':>8} {'mined':>6} {'mine s':>7} {'PRs/min':>8} {'x':>6} "
                  f"{'rollouts':>9} {'stored':>7} {'roll s':>7} {'traj/min':>9} {'x':>6} "
                  f"{'total s':>8} {'x':>6}  work")
            for r in results:
                print(f"{r['workers']:>8} {r['prs_mined']:>6} {r['mining_seconds']:>7.1f} "
                      f"{r['prs_per_minute']:>8.1f} {r['speedup_mining_seconds']:>5.2f}x "
                      f"{r['rollouts_run']:>9} {r['trajectories']:>7} "
                      f"{r['rollout_seconds']:>7.1f} {r['trajectories_per_minute']:>9.1f} "
                      f"{r['speedup_rollout_seconds']:>5.2f}x {r['seconds']:>8.1f} "
                      f"{r['speedup_seconds']:>5.2f}x  "
                      f"{'same as 1 worker' if r['same_work'] else 'DIFFERS from 1 worker'}")
    finally:
        sim.stop()
        redis_server.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
