"""Sandbox costs on the Docker backend.

Prints the time to create a sandbox from the cached image (median), the per-`exec` overhead
of `true` through our sandbox next to a raw `docker exec` of `true` in the same run (ratio),
and checks that no container is left after many create/close cycles.
Targets: exec within 1.3x of raw docker exec; creation under 1.5 s median; no leaks.

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
            ours, raw = [], []
            for _ in range(args.execs):
                t = time.perf_counter()
                box.exec("true")
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                subprocess.run(["docker", "exec", box.container.id, "true"], check=True)
                raw.append(time.perf_counter() - t)
        ours_m, raw_m = statistics.median(ours), statistics.median(raw)
        print(f"exec true: ours {ours_m * 1000:.0f} ms, raw docker exec {raw_m * 1000:.0f} ms "
              f"(median of {args.execs}); ratio {ours_m / raw_m:.2f}x (target within 1.3x)")


if __name__ == "__main__":
    main()
