"""The offline funnel on a real clone: `davinci run` cold, then warm.

Runs `davinci run --git CLONE --workers N --json` twice, each time into a fresh database: the
first run builds the environment images it needs (cold), the second finds them (warm). Prints
both wall times, the funnel counts of each (they must agree: the same chains, the same
verdicts), the image reuse rate, and the warm run's time as a ratio of the cold one, the
baseline measured in the same run. Target (issue 14): a ~250-PR repository, warm, with 2
workers, in under 20 minutes on a 2-core machine.

    python3 bench/funnel.py --git CLONE [--workers 2] [--chains K]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(clone: Path, workers: int, chains: int | None, data: Path) -> tuple[float, Any]:
    env = {**os.environ, "DAVINCI_DATA_DIR": str(data), "DAVINCI_LOG_LEVEL": "warning"}
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "bot", "run", "--git", str(clone), "--workers",
               str(workers), "--json", *(["--chains", str(chains)] if chains else [])]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"davinci run failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout)["funnel"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git", type=Path, required=True, help="a local clone")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chains", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cold_s, cold = run(args.git, args.workers, args.chains, Path(scratch) / "cold")
        warm_s, warm = run(args.git, args.workers, args.chains, Path(scratch) / "warm")
    print(f"clone: {args.git.name}; workers: {args.workers}")
    for name, seconds, funnel in (("cold", cold_s, cold), ("warm", warm_s, warm)):
        steps = " -> ".join(f"{s['name']} {s['count']}" for s in funnel["steps"])
        print(f"{name}: {seconds:7.1f}s  {steps}; images built {funnel['environments_built']}, "
              f"reused {funnel['environments_reused']} ({funnel['reuse_rate']:.0%})")
    same = [s["count"] for s in cold["steps"]] == [s["count"] for s in warm["steps"]]
    print(f"warm / cold: {warm_s / cold_s:.2f}x; same funnel both times: {same}; "
          f"warm under 20 minutes: {'met' if warm_s < 1200 else 'missed'}")


if __name__ == "__main__":
    main()
