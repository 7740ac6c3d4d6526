"""What a maintainer reads in the status comment."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.status import FOOTER, LinkView, PRStatus, Trajectory, marker, render
from rollout.state import ChainState

CHAIN = PRStatus(
    repository="textkit-dev/textkit", number=4, chain_id="c-1a2b3c", chain_prs=(1, 2, 4),
    links=(LinkView(1, 2, "references", "Follow-up to #1: long titles"),
           LinkView(2, 4, "fixes", "changes 1 line of #2 found by git blame in textkit/slug.py")),
    state=ChainState("mined"),
)


def with_state(state: ChainState, trajectory: Trajectory | None = None) -> str:
    return render(PRStatus(**{**CHAIN.__dict__, "state": state, "trajectory": trajectory}))


def test_chain_with_every_link_and_its_evidence() -> None:
    body = render(CHAIN)
    assert "#1 → #2 → **#4**" in body
    # Evidence is text, not code, so GitHub links `#1`.
    assert "| 2 | #2 | `references` | Follow-up to #1: long titles |" in body
    assert "| 3 | #4 | `fixes` |" in body
    assert "**Rollout:** eligible, not rolled out yet" in body
    assert FOOTER in body and "`comment: false`" in body
    assert body.rstrip().endswith(marker(4))


def test_rollout_states_read_as_sentences() -> None:
    assert "**Rollout:** running (stage 2 of 3)" in with_state(
        ChainState("running", stage=2, stages=3))
    accepted = with_state(ChainState("accepted", stages=3, score=0.934),
                          Trajectory(tool_calls=42, tokens=18304, policy="replay"))
    assert "**Rollout:** accepted (score 0.93)" in accepted
    assert "3 stages · 42 tool calls · 18,304 tokens · policy `replay`" in accepted
    rejected = with_state(ChainState("rejected", "stage 2 failed its tests after 3 attempts",
                                     score=0.41))
    assert "**Rollout:** rejected (score 0.41): stage 2 failed its tests after 3 attempts" \
        in rejected
    assert "**Rollout:** not eligible: no verifiable stage" in with_state(
        ChainState("not_eligible", "no verifiable stage"))
    retrying = with_state(ChainState("retrying", "the model server did not answer",
                                     retry_at=datetime(2026, 5, 1, 12, 30, tzinfo=UTC)))
    assert ("**Rollout:** failed, retrying at 2026-05-01 12:30 UTC: the model server did "
            "not answer") in retrying
    assert "**Rollout:** failed: no Docker engine answered" in with_state(
        ChainState("failed", "no Docker engine answered"))


def test_untrusted_text_cannot_break_out_or_ping_people() -> None:
    evidence = "see | @octocat `rm -rf` <script>x</script>\n" + "y" * 500
    hostile = PRStatus(repository="o/r", number=9, chain_id="c", chain_prs=(8, 9),
                       links=(LinkView(8, 9, "references", evidence),),
                       config_problem="line 3: mapping values are not allowed here @admin")
    body = render(hostile)
    table_row = next(line for line in body.splitlines() if line.startswith("| 2 |"))
    assert table_row.count("|") == 5
    assert "@octocat" not in body and "@admin" not in body
    assert "`rm -rf`" not in body and "<script>" not in body
    assert len(table_row) < 200
    assert "line 3: mapping values are not allowed here" in body


def test_a_pr_without_a_chain_says_so_and_is_not_worth_a_new_comment() -> None:
    alone = PRStatus(repository="o/r", number=7)
    body = render(alone)
    assert "has not joined a chain yet" in body
    assert marker(7) in body and marker(6) not in body
    assert not alone.worth_a_comment and CHAIN.worth_a_comment
    assert PRStatus(repository="o/r", number=7, config_problem="bad YAML").worth_a_comment
