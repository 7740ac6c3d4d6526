"""The whole pipeline under load: signed deliveries in, verified trajectories out.

Several copies of the sample repository sit behind the GitHub simulator. For 1, 2 and 4
worker processes (sharing one Redis and one PostgreSQL, as on several machines), every merged
PR of every copy is delivered to the app under gunicorn, and the clock runs until the workers
have mined every PR and stored every trajectory (replay policy, Docker sandbox when an engine
answers). Prints seconds, PRs and trajectories per minute per worker count, and the speed-up
over one worker measured in the same run. Mining is serialised per repository, so the
copies are what several workers can share; rollouts run in parallel.

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
from sqlalchemy import create_engine, text  # noqa: E402

from bot.sample import SampleRepository, build_sample_repository  # noqa: E402
from sandbox.factory import docker_available  # noqa: E402
from tests.e2e.loop import (  # noqa: E402
    INSTALLATION,
    SECRET,
    deliver,
    idle,
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


def run(workers: int, sample: SampleRepository, repos: int, base_env: dict[str, str],
        database_url: str, scratch: Path) -> dict[str, float]:
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
    processes = [start_worker(env, scratch / f"worker-{workers}-{i}.log")
                 for i in range(workers)]
    try:
        time.sleep(2.0)  # let the workers register before the clock starts
        started = time.perf_counter()
        for pr in sample.prs:  # merge order, each repository in turn
            for index in range(repos):
                payload = merged_pr(sample, pr.number)
                payload["repository"] = repository(index)
                deliver(url, "pull_request", payload, f"d-{workers}-{index}-{pr.number}")
        expected = 2 * repos  # chains 1 → 2 → 4 and 3 → 5 → 6 in every copy

        def finished() -> bool:
            stored = {t for t in trajectories(database_url) if len(t) == 3}
            return len(stored) >= 2 and len(trajectories(database_url)) >= expected \
                and idle(redis)
        wait_for(finished, 1800, f"{workers} worker(s) to finish", every=0.5)
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            stop_worker(process)
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)
    stored = len(trajectories(database_url))
    return {"workers": workers, "seconds": elapsed, "trajectories": stored,
            "prs_per_minute": 60 * len(sample.prs) * repos / elapsed,
            "trajectories_per_minute": 60 * stored / elapsed}


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
                print(f"  {workers} worker(s): {result['seconds']:.1f} s, "
                      f"{result['prs_per_minute']:.1f} PRs/min, "
                      f"{result['trajectories_per_minute']:.1f} trajectories/min",
                      file=sys.stderr)
        base = results[0]["seconds"]
        for result in results:
            result["speedup"] = base / result["seconds"]
        if args.json:
            print(json.dumps(results))
        else:
            print(f"{'workers':>8} {'seconds':>9} {'PRs/min':>9} {'traj/min':>9} {'speed-up':>9}")
            for r in results:
                print(f"{r['workers']:>8} {r['seconds']:>9.1f} {r['prs_per_minute']:>9.1f} "
                      f"{r['trajectories_per_minute']:>9.1f} {r['speedup']:>8.2f}x")
    finally:
        sim.stop()
        redis_server.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
