"""Mining jobs end to end: the simulator, a real git repository, real Redis and databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from bot.cli import main
from bot.db import Database
from bot.github import installation_client
from bot.jobs.mining import backfill, mine
from bot.models import Delivery, Repository
from bot.runtime import ROLLOUT_QUEUE, Runtime
from bot.settings import Settings
from chains.store import ChainRow, LinkRow, PullRequestRow
from tests.github.conftest import INSTALLATION_ID
from tests.github_sim import GitHubSimulator
from tests.gitrepo import GitRepo
from tests.webhooks import payloads

REPO = "octo-org/widgets"


@pytest.fixture
def history(github_sim: GitHubSimulator, git_repo: GitRepo) -> GitRepo:
    """#10 adds a parser with tests, #11 follows up on it, #12 is unrelated, #13 fixes #10."""
    github_sim.add_repo("octo-org", "widgets", git_repo.path, INSTALLATION_ID)
    github_sim.add_issue(REPO, 5, "Parsing", "We need a parser")
    prs = [
        (10, "Add parser", "Closes #5", {"src/parse.py": "def parse(text):\n"
                                         "    return text.split()\n",
                                         "tests/test_parse.py": "def test_parse():\n"
                                         "    assert parse('a b') == ['a', 'b']\n"}, (5,)),
        (11, "Parser: accept commas", "Follow-up to #10",
         {"src/parse.py": "def parse(text):\n    return text.replace(',', ' ').split()\n",
          "tests/test_parse.py": "def test_parse():\n    assert parse('a,b') == ['a', 'b']\n"},
         ()),
        (12, "Docs: usage", "", {"docs/usage.md": "# Usage\n"}, ()),
        (13, "Add tokenizer", "Part 2 of #11",
         {"src/tokens.py": "TOKENS = []\n", "tests/test_tokens.py": "def test_t():\n"
          "    assert True\n"}, ()),
    ]
    for number, title, body, files, closes in prs:
        sha = git_repo.pull_request(number, title, files, squash=number % 2 == 0)
        github_sim.add_pull(REPO, number, sha, title, body, closes=closes)
    return git_repo


def _counts(database: Database) -> tuple[int, int, int]:
    with database.session() as session:
        return (session.scalar(select(func.count()).select_from(PullRequestRow)) or 0,
                session.scalar(select(func.count()).select_from(LinkRow)) or 0,
                session.scalar(select(func.count()).select_from(ChainRow)) or 0)


def test_installation_token_is_cached_in_redis(settings: Settings, github_sim: GitHubSimulator,
                                               history: GitRepo) -> None:
    redis = Redis.from_url(settings.redis_url)
    first = installation_client(settings, redis, INSTALLATION_ID)
    second = installation_client(settings, redis, INSTALLATION_ID)
    assert first.get_repo(REPO).full_name == second.get_repo(REPO).full_name == REPO
    assert len(github_sim.requests_to("POST", r"/access_tokens$")) == 1
    assert redis.ttl(f"davinci:installation-token:{INSTALLATION_ID}") > 3000


def test_mine_pull_request_links_chains_and_enqueues_rollout(
        runtime: Runtime, history: GitRepo, database: Database,
        github_sim: GitHubSimulator) -> None:
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    first = mine(runtime, client, INSTALLATION_ID, REPO, 10)
    assert first.chain is not None and first.chain.prs == (10,) and first.rollout_job is None

    second = mine(runtime, client, INSTALLATION_ID, REPO, 11)
    assert second.chain is not None and second.chain.prs == (10, 11)
    assert second.chain.eligible and second.rollout_job is not None
    queue = Queue(ROLLOUT_QUEUE, connection=runtime.redis)
    job = queue.fetch_job(second.rollout_job)
    assert job is not None and job.func_name == "bot.jobs.rollouts.rollout_chain"
    assert job.args == (second.chain.id, "replay")
    with database.session() as session:
        links = {(r.earlier, r.kind) for r in session.scalars(
            select(LinkRow).where(LinkRow.later == 11))}
    assert (10, "references") in links
    mirror = runtime.settings.data_dir / "mirrors" / "octo-org" / "widgets.git"
    assert (mirror / "HEAD").exists()

    before = _counts(database)
    pulls_fetched = len(github_sim.requests_to("GET", r"/pulls/11"))
    again = mine(runtime, client, INSTALLATION_ID, REPO, 11)
    assert len(github_sim.requests_to("GET", r"/pulls/11")) == pulls_fetched
    assert again.already_mined and again.rollout_job is None
    assert again.chain is not None and again.chain.id == second.chain.id
    assert _counts(database) == before
    assert before[0] == 2 and before[2] == 1
    assert queue.count == 1


def test_chain_growth_enqueues_a_new_rollout(runtime: Runtime, history: GitRepo) -> None:
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    jobs = [mine(runtime, client, INSTALLATION_ID, REPO, n).rollout_job for n in (10, 11, 13)]
    assert jobs[0] is None and jobs[1] is not None and jobs[2] is not None
    assert jobs[1] != jobs[2] and jobs[2].endswith("-len3-replay")


def test_prs_delivered_earlier_are_mined_first_whatever_order_the_jobs_run_in(
        runtime: Runtime, history: GitRepo, database: Database,
        github_sim: GitHubSimulator) -> None:
    """Two workers on one queue may start #13's job before #10's: the chains must not care."""
    pulls = github_sim.repo(REPO).pulls
    with database.session() as session:
        for number in (10, 11, 12, 13):
            payload = payloads.pull_request(number=number)
            payload["pull_request"]["merged_at"] = pulls[number].merged_at.strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            session.add(Delivery(id=f"d-{number}", event="pull_request", action="closed",
                                 repository=REPO, installation_id=INSTALLATION_ID,
                                 status="enqueued", payload=json.dumps(payload)))
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    last = mine(runtime, client, INSTALLATION_ID, REPO, 13)
    assert last.chain is not None and last.chain.prs == (10, 11, 13)
    for number in (11, 10, 12):
        assert mine(runtime, client, INSTALLATION_ID, REPO, number).already_mined
    with database.session() as session:
        chains = sorted(tuple(row.prs) for row in session.scalars(select(ChainRow)))
        links = sorted((r.earlier, r.later, r.kind) for r in session.scalars(select(LinkRow)))
    assert chains == [(10, 11, 13), (12,)]
    assert (10, 11, "references") in links and (11, 13, "references") in links


def test_an_earlier_pr_whose_delivery_never_came_is_mined_when_a_later_one_names_it(
        runtime: Runtime, history: GitRepo, database: Database,
        github_sim: GitHubSimulator) -> None:
    """#11 says "Follow-up to #10"; #10's delivery was lost (or comes late, redelivered)."""
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    later = mine(runtime, client, INSTALLATION_ID, REPO, 11)
    assert later.chain is not None and later.chain.prs == (10, 11)
    assert later.rollout_job is not None
    assert mine(runtime, client, INSTALLATION_ID, REPO, 10).already_mined
    # #13 ("Part 2 of #11") names a PR already mined and nothing else: no extra lookups.
    before = len(github_sim.requests_to("GET", r"/pulls/\d+$"))
    assert mine(runtime, client, INSTALLATION_ID, REPO, 13).chain.prs == (10, 11, 13)
    assert len(github_sim.requests_to("GET", r"/pulls/\d+$")) == before + 1
    # Issue #5 (closed by #10) is not taken for a PR; #12, named by nobody, stays unmined.
    with database.session() as session:
        assert sorted(session.scalars(select(PullRequestRow.number))) == [10, 11, 13]


def test_disabled_repository_is_marked_and_not_mined(
        runtime: Runtime, history: GitRepo, database: Database) -> None:
    history.commit("Opt out", {".github/davinci.yml": "enabled: false\n"})
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    outcome = mine(runtime, client, INSTALLATION_ID, REPO, 10)
    assert outcome.skipped is not None and outcome.chain is None
    with database.session() as session:
        repo = session.scalars(select(Repository).where(Repository.full_name == REPO)).one()
        assert repo.enabled is False and repo.installation_id == INSTALLATION_ID
    assert _counts(database) == (0, 0, 0)


def test_malformed_config_applies_defaults_and_is_reported(
        runtime: Runtime, history: GitRepo, database: Database) -> None:
    history.commit("Bad config", {".github/davinci.yml": "enabled: [yes\n"})
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    outcome = mine(runtime, client, INSTALLATION_ID, REPO, 10)
    assert outcome.config_problem is not None and "davinci.yml" in outcome.config_problem
    assert outcome.chain is not None and _counts(database)[0] == 1


def test_backfill_is_resumable_after_an_interruption(
        runtime: Runtime, history: GitRepo, database: Database,
        github_sim: GitHubSimulator) -> None:
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    github_sim.inject("GET", r"/pulls/12$", 500, times=50)  # outlasts the client's retries
    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises, the run stops
        backfill(runtime, client, INSTALLATION_ID, REPO, limit=None)
    assert _counts(database)[0] == 2  # 10 and 11 are kept

    github_sim.faults.clear()
    seen: list[tuple[int, int]] = []
    summary = backfill(runtime, client, INSTALLATION_ID, REPO, limit=None,
                       progress=lambda i, n: seen.append((i, n)))
    assert (summary.candidates, summary.skipped, summary.mined) == (4, 2, 2)
    assert seen[-1] == (4, 4)
    with database.session() as session:
        numbers = sorted(session.scalars(select(PullRequestRow.number)))
        chains = {tuple(c.prs) for c in session.scalars(select(ChainRow))}
    assert numbers == [10, 11, 12, 13]
    assert (10, 11, 13) in chains
    assert len(github_sim.requests_to("GET", r"/pulls/10$")) == 1  # not fetched again


def test_backfill_honours_rate_limits(runtime: Runtime, history: GitRepo,
                                      github_sim: GitHubSimulator) -> None:
    client = installation_client(runtime.settings, runtime.redis, INSTALLATION_ID)
    github_sim.secondary_rate_limit("GET", r"/pulls/11/files$", retry_after=1)
    github_sim.primary_rate_limit("GET", r"/pulls/12$", reset_in=1)
    summary = backfill(runtime, client, INSTALLATION_ID, REPO, limit=3)
    assert summary.mined == 3 and summary.candidates == 3
    assert [r.status for r in github_sim.requests_to("GET", r"/pulls/12$")] == [403, 200]


def test_backfill_command_prints_json(settings: Settings, history: GitRepo, tmp_path: Path,
                                      github_sim: GitHubSimulator,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"GITHUB_APP_ID": str(github_sim.app_id), "GITHUB_PRIVATE_KEY":
           github_sim.private_key_pem, "GITHUB_API_URL": github_sim.url,
           "REDIS_URL": settings.redis_url, "DAVINCI_DATA_DIR": str(tmp_path / "cli")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(main, ["backfill", REPO, "--limit", "2", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["repository"] == REPO and document["mined"] == 2
    unknown = CliRunner().invoke(main, ["backfill", "octo-org/nope", "--json"])
    assert unknown.exit_code != 0 and "octo-org/nope" in unknown.stderr


def test_rq_worker_runs_the_job_from_the_environment(
        settings: Settings, history: GitRepo, tmp_path: Path, github_sim: GitHubSimulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler's job path, run by a real rq worker that opens everything from the env."""
    from rq import SimpleWorker

    database_url = f"sqlite:///{tmp_path / 'worker.db'}"
    env = {"GITHUB_APP_ID": str(github_sim.app_id), "GITHUB_PRIVATE_KEY":
           github_sim.private_key_pem, "GITHUB_API_URL": github_sim.url,
           "REDIS_URL": settings.redis_url, "DAVINCI_DATA_DIR": str(tmp_path / "worker"),
           "DATABASE_URL": database_url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    redis = Redis.from_url(settings.redis_url)
    queue = Queue("davinci-mining", connection=redis)
    jobs = [queue.enqueue("bot.jobs.mining.mine_pull_request", INSTALLATION_ID, REPO, n)
            for n in (10, 11)]
    SimpleWorker([queue], connection=redis).work(burst=True)
    results = [job.latest_result() for job in jobs]
    assert all(r is not None and r.type == r.Type.SUCCESSFUL for r in results)
    assert jobs[1].return_value()["rollout_job"].endswith("-len2-replay")
    database = Database(database_url)
    assert _counts(database)[0] == 2
    database.dispose()
    assert Queue(ROLLOUT_QUEUE, connection=redis).count == 1
