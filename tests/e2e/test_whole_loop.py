"""The whole loop with real processes: gunicorn, an rq worker, Redis, the database, the GitHub
simulator and the sandbox. Signed deliveries go in; trajectories and status comments come out."""

from __future__ import annotations

import pytest

from bot.sample import SampleRepository
from tests.e2e.loop import REPO, deliver, install, merged_pr, trajectories, work
from tests.github_sim import GitHubSimulator


@pytest.mark.slow
def test_deliveries_in_trajectories_and_status_comments_out(
        world: tuple[GitHubSimulator, SampleRepository], env: dict[str, str],
        web: str) -> None:
    sim, sample = world
    install(web)
    work(env)  # the backfill finds no merged PR yet
    for pr in sample.prs:  # merged one after another, as GitHub would tell us
        sim.add_pull(REPO, pr.number, sample.merge_commits[pr.number], pr.title, pr.body,
                     author=pr.author, labels=pr.labels, closes=pr.closes)
        answer = deliver(web, "pull_request", merged_pr(sample, pr.number), f"d-{pr.number}")
        assert answer["status"] == "enqueued" and len(answer["jobs"]) == 1  # type: ignore
        work(env)
    before = trajectories(env["DATABASE_URL"])
    assert (1, 2, 4) in before and (3, 5, 6) in before
    final = [c.body for c in sim.comments_on(REPO, 4)]
    assert len(final) == 1, "one status comment per PR, edited in place"
    assert "#1 → #2 → **#4**" in final[0] and "**Rollout:** accepted (score 1.00)" in final[0]
    assert "`fixes`" in final[0]
    for number in (1, 2, 3, 5, 6):  # each PR of a chain: one comment, showing the chain's end
        comments = sim.comments_on(REPO, number)
        assert len(comments) == 1
        assert "not joined" not in comments[0].body
        assert "**Rollout:** accepted (score 1.00)" in comments[0].body, comments[0].body
    assert "**#1** → #2 → #4" in sim.comments_on(REPO, 1)[0].body
    assert sim.comments_on(REPO, 7) == [], "a PR that joined no chain gets no comment"
    # A redelivered merge webhook changes nothing.
    again = deliver(web, "pull_request", merged_pr(sample, 4), "d-4", expected=200)
    assert again == {"status": "duplicate", "delivery": "d-4"}
    work(env)
    assert trajectories(env["DATABASE_URL"]) == before
