"""Sandbox costs on the Docker backend.

Prints the time to create a sandbox from the cached image (median), the per-`exec` cost of
`true` through our sandbox next to the floor, the same exec through the raw Docker API from
the same client (create, start and read the output, inspect the exit code: the least any
exec that reports an exit code needs), taking turns in the same run; and checks that no
container is left after many create/close cycles. The `docker` command-line tool, started per
call, is printed for reference only: its process start-up is no part of our exec. Every exec
is checked to exit 0, and the counts are printed next to the times.
Targets: exec within 1.3x of the raw API; creation under 1.5 s median; no leaks.

    python bench/sandbox.py [--cycles 200] [--execs 50]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402

from sandbox.docker import LABEL, DockerSandbox  # noqa: E402
from sandbox.factory import DEFAULT_IMAGE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--execs", type=int, default=50)
    args = parser.parse_args()
    engine = docker.from_env()
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch) / "repo"
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        (repo / "a.py").write_text("A = 1\n")
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b",
                        "commit", "-qm", "init"], check=True)
        creations = []
        for _ in range(args.cycles):
            t = time.perf_counter()
            box = DockerSandbox(repo, "HEAD", DEFAULT_IMAGE, engine=engine)
            creations.append(time.perf_counter() - t)
            box.close()
        leaked = engine.containers.list(all=True, filters={"label": f"{LABEL}=1"})
        print(f"create: median {statistics.median(creations):.2f} s over {args.cycles} "
              f"create/close cycles (target < 1.5 s); leaked containers: {len(leaked)}")
        with DockerSandbox(repo, "HEAD", DEFAULT_IMAGE, engine=engine) as box:
            ours, api, cli = [], [], []
            for _ in range(args.execs):
                t = time.perf_counter()
                if box.exec("true").exit_code != 0:
                    raise SystemExit("our exec of `true` did not exit 0")
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                if raw_exec(engine, box.container.id, ["true"]) != 0:
                    raise SystemExit("the raw API's exec of `true` did not exit 0")
                api.append(time.perf_counter() - t)
                t = time.perf_counter()
                subprocess.run(["docker", "exec", box.container.id, "true"], check=True)
                cli.append(time.perf_counter() - t)
        ours_m, api_m, cli_m = (statistics.median(x) for x in (ours, api, cli))
        print(f"exec true ({args.execs} each, all exit 0, taking turns): ours median "
              f"{ours_m * 1000:.1f} ms, raw Docker API {api_m * 1000:.1f} ms; ratio "
              f"{ours_m / api_m:.2f}x the API floor (target within 1.3x)")
        print(f"for reference, `docker exec` started per call: {cli_m * 1000:.1f} ms "
              f"(ours {ours_m / cli_m:.2f}x; the CLI's own start-up is in its time)")


def raw_exec(engine: docker.DockerClient, container: str, command: list[str]) -> int:
    """An exec through the Docker API with nothing around it; its exit code."""
    exec_id = engine.api.exec_create(container, command)["Id"]
    engine.api.exec_start(exec_id)
    return int(engine.api.exec_inspect(exec_id)["ExitCode"])


if __name__ == "__main__":
    main()
