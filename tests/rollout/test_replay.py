"""The replay policy: the human commits, replayed through the agent loop, pass every stage."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import Database
from chains.model import Commit, PullRequest
from corpus.record import record_id
from rollout import RolloutResult, Task, build_task, run_rollout
from rollout.record import audit, trajectory_record, verdict_summary
from rollout.store import ValidationRow, latest_rollout, save_rollout, save_validation
from tests.gitrepo import GitRepo
from tests.rollout.fixture_repo import ChainRepo
from tests.rollout.sandboxes import open_sandbox


@pytest.fixture(scope="module")
def result(chain_repo: ChainRepo, task: Task) -> RolloutResult:
    """One replay rollout, validation included, shared by the tests below."""
    with open_sandbox(chain_repo.path, task.base_commit) as box:
        return run_rollout(chain_repo.path, task, box)


def test_replay_passes_every_stage(result: RolloutResult) -> None:

    assert result.policy == "replay"
    assert result.exit_status == "completed"
    assert [s.verdict for s in result.stages] == ["passed", "passed", "passed"]
    assert [s.attempts for s in result.stages] == [1, 1, 1]
    assert result.score == 1.0 and result.accepted
    assert result.tokens == 0
    # PR 1 has two commits: both messages appear as the assistant's text
    texts = [m["content"] for m in result.messages if m["role"] == "assistant"]
    assert "Add mean" in texts and "Add median and tests for the statistics" in texts
    # the replayed test run is a real observation from the sandbox
    outputs = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert any("exit code: 0" in o and "passed" in o for o in outputs)
    # the agent's patch for stage 3 is the human fix
    assert "ordered = sorted(values)" in result.stages[2].patch
    assert result.stages[2].checks[0].similarity == 1.0


def test_replay_trajectory_record_follows_the_corpus_format(result: RolloutResult,
                                                           task: Task) -> None:
    record = trajectory_record(result)

    assert record["schema_version"] == 1
    assert record["id"] == record_id(record)
    assert record["chain"] == {"id": "chain-stats", "prs": [1, 2, 3],
                               "kinds": ["references", "fixes"]}
    assert record["base_commit"] == task.base_commit
    assert [s["verdict"] for s in record["stages"]] == ["passed"] * 3
    assert record["policy"] == "replay"
    assert record["tool_calls"] == sum(len(m.get("tool_calls", []))
                                       for m in record["messages"])
    tool_ids = {c["id"] for m in record["messages"] for c in m.get("tool_calls", [])}
    for message in record["messages"]:
        if message["role"] == "tool":
            assert message["tool_call_id"] in tool_ids
        for call in message.get("tool_calls", []):
            json.loads(call["function"]["arguments"])
    assert {t["function"]["name"] for t in record["tools"]} == {
        "bash", "read_file", "write_file", "str_replace", "submit"}
    json.dumps(record)  # serialisable as it is

    summary = verdict_summary(result)
    assert summary["accepted"] is True
    assert summary["stages"][0] == {"pr": 1, "attempts": 1, "score": 1.0, "verdict": "passed"}
    evidence = audit(result)
    assert "passed" in evidence["stages"][2]["checks"][0]["test_log"]
    assert evidence["validation"]["eligible"] is True


def test_replay_records_time_per_stage(result: RolloutResult) -> None:
    for stage in result.stages:
        assert stage.timings["total"] >= stage.timings["tests"] > 0
        assert stage.timings["sandbox"] > 0


def test_validation_and_verdict_are_stored_for_audit(result: RolloutResult,
                                                     database: Database) -> None:
    with database.session() as session:
        save_validation(session, result.validation)
        rollout_id = save_rollout(session, result)
    with database.session() as session:
        row = latest_rollout(session, "chain-stats")
        assert row is not None and row.id == rollout_id
        assert row.accepted and row.score == 1.0 and row.policy == "replay"
        assert row.summary["stages"][2]["verdict"] == "passed"
        assert "passed" in row.audit["stages"][0]["checks"][0]["test_log"]
        assert row.record["id"] == row.record_id
        stored = session.scalars(select(ValidationRow)).one()
        assert stored.eligible and stored.result["stages"][0]["fail_to_pass"]
        assert latest_rollout(session, "another-chain") is None


def test_a_pr_whose_commits_are_gone_is_replayed_as_one_change(
        chain_repo: ChainRepo, open_sandbox: Callable) -> None:
    squashed = replace(chain_repo.prs[2], commits=(Commit("0" * 40, "lost"),))
    task = build_task(chain_repo.path, "chain-squashed", [*chain_repo.prs[:2], squashed])
    result = run_rollout(chain_repo.path, task, open_sandbox(task.base_commit))
    assert [s.verdict for s in result.stages] == ["passed"] * 3
    assert {"role": "assistant", "content": squashed.title} in [
        {"role": m["role"], "content": m["content"]} for m in result.messages]


def test_a_branch_commit_already_upstream_in_a_newer_form_is_not_replayed_back(
        tmp_path: Path) -> None:
    """A fork's branch carries commit X, which upstream took as a cherry-pick and then built
    on (Y). The PR's commits are X and Z; replaying X would write the file as it was before Y.
    The replay ends with every file it wrote as the merge has it, so it passes as validation
    did."""
    git = GitRepo.init(tmp_path / "fork")
    lib = "def one():\n    return 1\n\n\ndef two():\n    return 2\n"
    base = git.commit("Start", {"pkg/__init__.py": "", "pkg/lib.py": lib,
                                "pkg/app.py": "from pkg.lib import one\n",
                                "tests/__init__.py": "",
                                "tests/test_lib.py": "from pkg.lib import two\n\n\n"
                                                     "def test_two():\n    assert two() == 2\n"})
    git.git("checkout", "-q", "-b", "fork")
    fixed_one = lib.replace("return 1", "return 1  # one")
    x = git.commit("X: document one", {"pkg/lib.py": fixed_one})
    z = git.commit("Z: app says three", {
        "pkg/app.py": "from pkg.lib import one\n\n\ndef three():\n    return one() + 2\n",
        "tests/test_app.py": "from pkg.app import three\n\n\n"
                             "def test_three():\n    assert three() == 3\n"})
    git.git("checkout", "-q", "main")
    git.git("cherry-pick", x)
    newer = fixed_one.replace("return 2", "return 1 + 1")
    git.commit("Y: upstream builds on X", {
        "pkg/lib.py": newer, "tests/test_lib.py": "from pkg.lib import two\n\n\n"
        "def test_two():\n    assert two() == 2\n\n\ndef test_two_is_sum():\n"
        "    import inspect\n    assert '1 + 1' in inspect.getsource(two)\n"})
    first_parent = git.git("rev-parse", "HEAD")
    git.git("merge", "-q", "--no-ff", "-m", "Merge pull request #5 from someone/fork", "fork")
    merge = git.git("rev-parse", "HEAD")
    commits = tuple(Commit(sha=sha, message=git.git("log", "-1", "--format=%s", sha),
                           author="someone") for sha in (x, z))
    pr = PullRequest(repository="octo-org/widgets", number=5, title="App says three",
                     author="someone", base_commit=first_parent, merge_commit=merge,
                     commits=commits)
    task = build_task(git.path, "chain-fork", [pr], [])
    with open_sandbox(git.path, task.base_commit) as box:
        result = run_rollout(git.path, task, box)
    assert result.accepted, result.reason
    assert "pkg/lib.py" not in result.stages[0].patch  # Y's newer line was kept
    assert base != merge
