"""Replay rollouts of the fixture chain: where a stage's seconds go.

Splits every stage's wall time into the sandbox (file operations, git snapshots, the replayed
commands), the hidden tests (verifier), the policy (replay reading the human commits) and our
own overhead (the loop, tools, verifier bookkeeping). Prints medians over the runs and the
ratio of a stage's wall time to its baseline, the time spent inside the sandbox.
Target: our own overhead under 5% of a stage's time.

Then the price of the hardened hidden run (sandbox.testrun.run_hidden: the agent's processes
ended, test infrastructure set aside and restored from the reference, pytest started
isolated) next to a plain run of the same tests on the same tree (the hidden test files
written, `python3 -m pytest`, then the agent's files put back), alternating, per stage.
Target: at most 1.5x the plain run.

Last, long rollouts with the llm policy against the vLLM-like simulator in a 32k window (a
scripted agent, 50 long-output commands per stage, so 150+ steps with condensing): our own
time per step (the loop, the context bookkeeping, the journal, the tools' wrapping), beyond
the sandbox and the model, at 5 and at 50 commands per stage, and their ratio.
Target: under 5 ms per step at 150+ steps.

    python3 bench/rollout.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollout import (  # noqa: E402
    RolloutConfig,
    Task,
    TaskValidation,
    build_task,
    run_rollout,
    validate_task,
)
from rollout.llm import LLMClient, LLMConfig  # noqa: E402
from rollout.policies import LLMPolicy  # noqa: E402
from rollout.workspace import restore, take  # noqa: E402
from sandbox.base import Sandbox  # noqa: E402
from sandbox.testrun import run_hidden, run_tests  # noqa: E402
from tests.llm_sim import LLMSim  # noqa: E402
from tests.rollout.agents import scripted_agent  # noqa: E402
from tests.rollout.fixture_repo import ChainRepo, make_chain_repo  # noqa: E402
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
            hidden = _hidden_cost(box, task, max(args.runs, 5))
            long_runs = {looks: _long_rollout(chain, task, box, validation, looks)
                         for looks in (5, 50)}
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
    print(f"\n{'stage':>5} {'tests':>6} {'plain s':>8} {'hidden s':>9} {'x plain':>8}")
    ratios = []
    for pr, (count, plain, guarded) in hidden.items():
        ratios.append(guarded / plain)
        print(f"{pr:>5} {count:>6} {plain:8.3f} {guarded:9.3f} {guarded / plain:8.2f}")
    print(f"hardened hidden run: worst stage {max(ratios):.2f}x a plain run of the same tests "
          f"(target <= 1.5x: {'met' if max(ratios) <= 1.5 else 'missed'})")
    print(f"\n{'looks':>5} {'steps':>6} {'condensed':>9} {'own ms/step':>12} {'journal':>8}")
    for looks, (steps, condensed, per_step, journaled) in long_runs.items():
        print(f"{looks:>5} {steps:>6} {condensed:>9} {per_step * 1000:12.3f} {journaled:>8}")
    short, long = long_runs[5][2], long_runs[50][2]
    print(f"llm policy, 32k window: {long * 1000:.2f} ms of our own per step at "
          f"{long_runs[50][0]} steps, {long / short:.2f}x the short rollout's "
          f"(target < 5 ms: {'met' if long < 0.005 else 'missed'})")


def _hidden_cost(box: Sandbox, task: Task, runs: int) -> dict[int, tuple[int, float, float]]:
    """Per stage: tests run, median seconds of a plain and of the hardened run."""
    found = {}
    for stage in task.stages:
        box.reset(stage.base_commit)
        box.apply_patch(stage.gold_patch)
        plain, guarded, count = [], [], 0
        for _ in range(runs):
            started = time.perf_counter()
            own = take(box, [path for path, _ in stage.hidden_tests])
            restore(box, stage.hidden_tests)
            run = run_tests(box, stage.test_targets, 300)
            restore(box, own)
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            hardened = run_hidden(box, stage.hidden())
            guarded.append(time.perf_counter() - started)
            assert run.outcomes == hardened.outcomes, "both runs must see the same outcomes"
            count = len(run.outcomes)
        found[stage.pr] = (count, statistics.median(plain), statistics.median(guarded))
    return found


def _long_rollout(chain: ChainRepo, task: Task, box: Sandbox, validation: TaskValidation,
                  looks: int) -> tuple[int, int, float, int]:
    """Steps, condensed observations, our own seconds per step, journal lines."""
    sim = LLMSim(model="bench", max_model_len=32_768).start()
    try:
        sim.responder = scripted_agent(sim, task, chain, looks)
        client = LLMClient(LLMConfig(base_url=sim.base_url, model="bench", retries=0))
        journal: list[dict[str, Any]] = []
        result = run_rollout(chain.path, task, box, LLMPolicy(client),
                             RolloutConfig(max_steps=1000), validation=validation,
                             journal=journal.extend)
        assert result.accepted and not sim.refused, result.reason
    finally:
        sim.stop()
    own = sum(_own(stage.timings) for stage in result.stages)
    return result.steps, result.condensed, own / result.steps, len(journal)


def _own(timings: dict[str, float]) -> float:
    return timings["total"] - timings["sandbox"] - timings["tests"] - timings["policy"]


if __name__ == "__main__":
    main()
