"""`davinci chains list/show` and `davinci rollouts list/show` say where each chain is, in the
same words as the PR comment and the dashboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli import main
from bot.db import Database
from bot.runtime import Runtime
from bot.settings import Settings
from tests.states import NO_ENVIRONMENT, NO_STAGE, REPOSITORY, Arranged, arrange_states


@pytest.fixture
def states(tmp_path: Path, redis_url: str, sqlite_db: Database,
           monkeypatch: pytest.MonkeyPatch) -> Arranged:
    """The chains in each state, in the database the commands open (DATABASE_URL)."""
    runtime = Runtime(Settings(redis_url=redis_url, data_dir=tmp_path), _db=sqlite_db)
    return arrange_states(runtime, tmp_path, monkeypatch)


def davinci(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_chains_list_shows_each_chain_state(states: Arranged) -> None:
    listing = davinci("chains", "list")
    assert listing.exit_code == 0, listing.output
    lines = listing.stdout.splitlines()

    def state_line(chain_id: str) -> str:
        start = next(i for i, line in enumerate(lines) if line.startswith(chain_id + " "))
        return next(line for line in lines[start + 1:] if line.startswith("    state: "))

    assert state_line(states.accepted) == "    state: accepted (score 0.90)"
    assert state_line(states.not_eligible) == f"    state: not eligible: {NO_STAGE}"
    assert state_line(states.no_environment) == f"    state: not eligible: {NO_ENVIRONMENT}"
    assert state_line(states.mined) == "    state: eligible, not rolled out yet"
    unready = "not eligible: no PR changes tests and code, so no stage can be verified"
    assert state_line(states.unready) == f"    state: {unready}"
    assert listing.stdout.count(unready) == 1  # mining's verdict is the state: said once
    assert state_line(states.retrying).startswith("    state: failed, retrying at ")
    assert " UTC: fetching the repository failed (MirrorError" in state_line(states.retrying)
    documents = {c["id"]: c for c in json.loads(davinci("chains", "list", "--json").stdout)
                 ["chains"]}
    assert documents[states.unready]["state"] == "not_eligible"
    assert documents[states.unready]["state_text"] == (
        "not eligible: no PR changes tests and code, so no stage can be verified")
    assert documents[states.accepted]["run"] == states.accepted_run


def test_chains_show_tells_the_state_and_where_to_look(states: Arranged) -> None:
    shown = davinci("chains", "show", states.not_eligible)
    assert shown.exit_code == 0, shown.output
    assert "(eligible: 2 of 2 PRs change tests and code)" in shown.stdout  # mining's verdict stays
    assert f"  state: not eligible: {NO_STAGE}" in shown.stdout
    assert "  rollout: davinci rollouts show local-noverify-1" in shown.stdout
    document = json.loads(davinci("chains", "show", states.retrying, "--json").stdout)
    assert document["state"] == "retrying" and document["run"] == states.retrying_job


def test_rollouts_list_newest_first_with_the_record_of_an_accepted_one(
        states: Arranged) -> None:
    listing = davinci("rollouts", "list")
    assert listing.exit_code == 0, listing.output
    runs = [line.split()[0] for line in listing.stdout.splitlines() if not line.startswith(" ")]
    assert runs[0] == states.retrying_job  # its failure was written last
    assert set(runs) == {states.retrying_job, states.accepted_run, "local-noverify-1",
                         "local-noenv-1"}
    assert f"    not eligible: {NO_STAGE}" in listing.stdout
    assert f"    record: davinci corpus show {states.record_id[:16]}" in listing.stdout
    documents = json.loads(davinci("rollouts", "list", "--limit", "2", "--json").stdout)["runs"]
    assert [d["id"] for d in documents] == runs[:2]
    assert documents[0]["state"] == "retrying" and documents[0]["repository"] == REPOSITORY
    other = davinci("rollouts", "list", "--repository", "octo-org/other")
    assert other.exit_code == 0 and other.stdout.startswith("no rollouts yet")


def test_rollouts_show_one_run_with_its_stages_and_trajectory(states: Arranged) -> None:
    shown = davinci("rollouts", "show", "local-acc")
    assert shown.exit_code == 0, shown.output
    assert "  state: accepted (score 0.90)" in shown.stdout
    assert "  1. #20 resolved (score 1.00, 1 attempt(s))" in shown.stdout
    assert "  2. #21 resolved (score 0.80, 2 attempt(s))" in shown.stdout
    command = f"davinci corpus show {states.record_id}"
    assert f"  trajectory: {command}" in shown.stdout
    trajectory = davinci(*command.split()[1:])
    assert trajectory.exit_code == 0 and trajectory.stdout.startswith("trajectory ")
    document = json.loads(davinci("rollouts", "show", states.retrying_job, "--json").stdout)
    assert document["state"] == "retrying" and document["retry_at"]
    assert document["state_text"].startswith("failed, retrying at ")
    assert "UTC: fetching the repository failed" in document["state_text"]


def test_rollouts_show_names_what_it_cannot_find(states: Arranged) -> None:
    unknown = davinci("rollouts", "show", "nope")
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == ("Error: no rollout run 'nope' (see `davinci rollouts "
                                      "list`)")
    several = davinci("rollouts", "show", "local-no")
    assert several.exit_code == 1
    assert "'local-no' names 2 runs" in several.stderr
    assert "local-noenv-1" in several.stderr and "local-noverify-1" in several.stderr
