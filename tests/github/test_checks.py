"""`check_run: true`: the status comment's summary as a check run on the PR's merge commit."""

from __future__ import annotations

import pytest
from github import Github, GithubException

import bot.jobs  # noqa: F401 - registers the status comment after mining
from bot.checks import CHECK_NAME, check_view
from bot.db import Database
from bot.github import installation_client
from bot.jobs.mining import mine
from bot.jobs.status import chain_for, refresh
from bot.runtime import Runtime
from bot.status import PRStatus, marker
from rollout.state import ChainState
from rollout.store import RolloutRow, mark_run
from tests.github.conftest import INSTALLATION_ID
from tests.github_sim import GitHubSimulator
from tests.gitrepo import GitRepo

REPO = "octo-org/widgets"



@pytest.fixture
def database(sqlite_db: Database) -> Database:
    """Check runs are GitHub's side of the status; the store they read is tested on
    PostgreSQL with the rest of the mining and status tests."""
    return sqlite_db

def merged(sim: GitHubSimulator, repo: GitRepo, number: int, title: str) -> str:
    sha = repo.pull_request(number, title, {f"src/m{number}.py": f"X = {number}\n",
                                            f"tests/test_m{number}.py": "def test(): pass\n"},
                            squash=True)
    sim.add_pull(REPO, number, sha, title)
    return sha


def mined_chain(runtime: Runtime, sim: GitHubSimulator, repo: GitRepo, config: str
                ) -> tuple[Github, str]:
    """#20 then #21 ("Follow-up to #20") mined under ``config``; the merge commit of #21."""
    sim.add_repo("octo-org", "widgets", repo.path, INSTALLATION_ID)
    repo.commit("Configure daVinci", {".github/davinci.yml": config})
    merged(sim, repo, 20, "Add m20")
    head = merged(sim, repo, 21, "Follow-up to #20")
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    for number in (20, 21):
        assert mine(runtime, client, INSTALLATION_ID, REPO, number).chain is not None
    return client, head


def record_rollout(runtime: Runtime, accepted: bool, score: float) -> None:
    with runtime.db.session() as session:
        chain = chain_for(session, REPO, 21)
        assert chain is not None
        row = RolloutRow(chain_id=chain.id, policy="replay", model="replay",
                         exit_status="submitted" if accepted else "below_threshold",
                         score=score, accepted=accepted, record_id=f"r-{score}",
                         summary={"stages": [{}, {}], "tool_calls": 7, "tokens": 900},
                         audit={}, record={})
        session.add(row)
        session.flush()
        reason = "" if accepted else f"the chain scored {score:.2f}, below the threshold 0.80"
        mark_run(session, f"run-{score}", "accepted" if accepted else "rejected",
                 chain_id=chain.id, chain_length=len(chain.prs), policy="replay",
                 score=score, stages=2, reason=reason, rollout_id=row.id)


def test_the_check_run_carries_the_comment_and_is_edited_not_duplicated(
        runtime: Runtime, github_sim: GitHubSimulator, git_repo: GitRepo) -> None:
    client, head = mined_chain(runtime, github_sim, git_repo, "check_run: true\n")

    [run] = github_sim.check_runs_on(REPO, head)
    [comment] = github_sim.comments_on(REPO, 21)
    assert run.name == CHECK_NAME and run.app_id == github_sim.app_id
    assert (run.status, run.conclusion) == ("completed", "neutral")
    assert run.output["summary"] == comment.body.removesuffix("\n\n" + marker(21))
    assert "#20 → **#21**" in run.output["summary"]

    record_rollout(runtime, accepted=True, score=0.93)
    refresh(runtime, client, REPO, 21)

    [again] = github_sim.check_runs_on(REPO, head)
    [comment] = github_sim.comments_on(REPO, 21)
    assert again.id == run.id and len(again.sent) == 2
    assert again.conclusion == "success"
    assert again.output["title"] == "Rollout accepted with score 0.93"
    assert again.output["summary"] == comment.body.removesuffix("\n\n" + marker(21))
    assert "accepted (score 0.93)" in again.output["summary"]

    refresh(runtime, client, REPO, 21)
    assert len(github_sim.check_runs_on(REPO, head)[0].sent) == 2  # nothing new to say


def test_a_rejected_rollout_is_neutral_and_says_so(runtime: Runtime, github_sim: GitHubSimulator,
                                                   git_repo: GitRepo) -> None:
    client, head = mined_chain(runtime, github_sim, git_repo, "check_run: true\n")
    record_rollout(runtime, accepted=False, score=0.25)
    refresh(runtime, client, REPO, 21)
    [run] = github_sim.check_runs_on(REPO, head)
    assert run.conclusion == "neutral"
    assert run.output["title"] == "Rollout rejected (score 0.25)"
    assert "below the threshold" in run.output["summary"]


@pytest.mark.parametrize("config", ["check_run: false\n", "comment: true\n"])
def test_without_check_run_no_check_is_made(runtime: Runtime, github_sim: GitHubSimulator,
                                            git_repo: GitRepo, config: str) -> None:
    client, head = mined_chain(runtime, github_sim, git_repo, config)
    refresh(runtime, client, REPO, 21)
    assert github_sim.comments_on(REPO, 21)
    assert github_sim.check_runs == {}
    assert github_sim.requests_to("POST", r"/check-runs$") == []
    assert github_sim.requests_to("GET", r"/check-runs$") == []


def test_another_apps_check_of_the_same_name_is_left_alone(
        runtime: Runtime, github_sim: GitHubSimulator, git_repo: GitRepo) -> None:
    github_sim.add_repo("octo-org", "widgets", git_repo.path, INSTALLATION_ID)
    git_repo.commit("Configure daVinci", {".github/davinci.yml": "check_run: true\n"})
    head = merged(github_sim, git_repo, 30, "Add m30")
    theirs = github_sim.add_check_run(REPO, head, CHECK_NAME, app_id=999, conclusion="failure")
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    mine(runtime, client, INSTALLATION_ID, REPO, 30)
    runs = github_sim.check_runs_on(REPO, head)
    assert [r.app_id for r in runs] == [999, github_sim.app_id]
    assert theirs.conclusion == "failure" and theirs.sent == []
    assert runs[1].output["title"] == "Not in a chain yet"


def test_an_installation_without_the_checks_permission_keeps_its_comment(
        runtime: Runtime, github_sim: GitHubSimulator, git_repo: GitRepo) -> None:
    github_sim.inject("GET", r"/check-runs$", 403, times=10,
                      body={"message": "Resource not accessible by integration"})
    client, head = mined_chain(runtime, github_sim, git_repo, "check_run: true\n")
    assert "#20 → **#21**" in github_sim.comments_on(REPO, 21)[0].body
    assert github_sim.check_runs == {}
    assert github_sim.requests_to("POST", r"/check-runs$") == []
    # One try per refresh: #20 when mined, #21 when mined, #20 again when #21 joined its chain.
    assert len(github_sim.requests_to("GET", r"/check-runs$")) == 3


CHAIN = PRStatus(repository=REPO, number=21, chain_id="c1", chain_prs=(20, 21),
                 state=ChainState("mined"))


def chain_in(state: ChainState, **more: object) -> PRStatus:
    return PRStatus(**{**CHAIN.__dict__, "state": state, **more})


@pytest.mark.parametrize(("status", "conclusion", "title"), [
    (PRStatus(repository=REPO, number=21), "neutral", "Not in a chain yet"),
    (chain_in(ChainState("not_eligible", "no PR changes tests")), "neutral",
     "Rollout: not eligible: no PR changes tests"),
    (CHAIN, "neutral", "Rollout: eligible, not rolled out yet"),
    (chain_in(ChainState("running", stage=1, stages=2)), "neutral",
     "Rollout: running (stage 1 of 2)"),
    (chain_in(ChainState("failed", "docker")), "neutral", "Rollout: failed: docker"),
    (chain_in(ChainState("accepted", score=0.8)), "success",
     "Rollout accepted with score 0.80"),
    (chain_in(ChainState("accepted", score=0.8), ignored=True), "neutral",
     "Excluded from chains"),
])
def test_the_conclusion_says_what_is_decided(status: PRStatus, conclusion: str,
                                            title: str) -> None:
    view = check_view(status)
    assert (view.conclusion, view.title) == (conclusion, title)
    assert marker(21) not in view.summary and view.summary.startswith("### daVinci-Agency")


def test_the_simulator_checks_like_github(github_sim: GitHubSimulator, git_repo: GitRepo,
                                          runtime: Runtime) -> None:
    github_sim.add_repo("octo-org", "widgets", git_repo.path, INSTALLATION_ID)
    head = merged(github_sim, git_repo, 40, "Add m40")
    repo = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID).get_repo(REPO)
    with pytest.raises(GithubException) as completed_without_conclusion:
        repo.create_check_run(name="x", head_sha=head, status="completed")
    assert completed_without_conclusion.value.status == 422
    with pytest.raises(GithubException) as unknown_commit:
        repo.create_check_run(name="x", head_sha="0" * 40, conclusion="neutral",
                              output={"title": "t", "summary": "s"})
    assert unknown_commit.value.status == 422
    theirs = github_sim.add_check_run(REPO, head, "x", app_id=999)
    with pytest.raises(GithubException) as foreign:
        repo.get_check_run(theirs.id).edit(conclusion="neutral")
    assert foreign.value.status == 403
    first = repo.create_check_run(name="x", head_sha=head, status="in_progress")
    second = repo.create_check_run(name="x", head_sha=head, conclusion="success",
                                   output={"title": "t", "summary": "s"})
    listed = repo.get_commit(head).get_check_runs(check_name="x")
    assert listed.totalCount == 2 and [r.id for r in listed] == [second.id, theirs.id]
    everything = repo.get_commit(head).get_check_runs(check_name="x", filter="all")
    assert {r.id for r in everything} == {first.id, second.id, theirs.id}
    assert second.status == "completed" and second.output.summary == "s"
