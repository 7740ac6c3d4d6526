"""Replay rollouts of the fixture chain: where a stage's seconds go.

Splits every stage's wall time into the sandbox (file operations, git snapshots, the replayed
commands), the hidden tests (verifier), the policy (replay reading the human commits) and our
own overhead (the loop, tools, verifier bookkeeping). Prints medians over the runs and the
ratio of a stage's wall time to its baseline, the time spent inside the sandbox.
Target: our own overhead under 5% of a stage's time.

    python3 bench/rollout.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollout import RolloutConfig, build_task, run_rollout, validate_task  # noqa: E402
from tests.rollout.fixture_repo import make_chain_repo  # noqa: E402
from tests.rollout.sandboxes import open_sandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        chain = make_chain_repo(Path(tmp))
        task = build_task(chain.path, "bench", chain.prs, chain.kinds)
        with open_sandbox(chain.path, task.base_commit) as box:
            backend = type(box).__name__
            started = time.perf_counter()
            validation = validate_task(task, box)
            validation_seconds = time.perf_counter() - started
            rows: dict[int, list[dict[str, float]]] = {s.pr: [] for s in task.stages}
            for _ in range(args.runs):
                result = run_rollout(chain.path, task, box, config=RolloutConfig(),
                                     validation=validation)
                assert result.accepted, "replay must pass the fixture chain"
                for stage in result.stages:
                    rows[stage.pr].append(stage.timings)
    print(f"backend: {backend}; runs: {args.runs}; gold validation: {validation_seconds:.2f}s")
    print(f"{'stage':>5} {'total':>8} {'sandbox':>8} {'tests':>8} {'policy':>8} {'own':>8} "
          f"{'own %':>6} {'x base':>7}")
    shares = []
    for pr, timings in rows.items():
        med = {k: statistics.median(t[k] for t in timings)
               for k in ("total", "sandbox", "tests", "policy")}
        own = statistics.median(_own(t) for t in timings)
        share = statistics.median(_own(t) / t["total"] for t in timings)
        ratio = statistics.median(t["total"] / (t["sandbox"] + t["tests"]) for t in timings)
        shares.append(share)
        print(f"{pr:>5} {med['total']:8.3f} {med['sandbox']:8.3f} {med['tests']:8.3f} "
              f"{med['policy']:8.3f} {own:8.4f} {share:6.2%} {ratio:7.3f}")
    worst = max(shares)
    print(f"own overhead: worst stage {worst:.2%} of its time "
          f"(target < 5%: {'met' if worst < 0.05 else 'missed'})")


def _own(timings: dict[str, float]) -> float:
    return timings["total"] - timings["sandbox"] - timings["tests"] - timings["policy"]


if __name__ == "__main__":
    main()
