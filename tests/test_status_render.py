"""What a maintainer reads in the status comment."""

from __future__ import annotations

from bot.status import LinkView, PRStatus, RolloutView, marker, render

CHAIN = PRStatus(
    repository="textkit-dev/textkit", number=4, chain_id="c-1a2b3c", chain_prs=(1, 2, 4),
    links=(LinkView(1, 2, "references", "Follow-up to #1: long titles"),
           LinkView(2, 4, "fixes", "changes 1 line of #2 found by git blame in textkit/slug.py")),
    eligible=True, eligibility="3 pull requests, 3 touch tests",
)


def test_chain_with_every_link_and_its_evidence() -> None:
    body = render(CHAIN)
    assert "#1 → #2 → **#4**" in body
    assert "| 2 | #2 | `references` | `Follow-up to #1: long titles` |" in body
    assert "| 3 | #4 | `fixes` |" in body
    assert "**Rollout:** eligible" in body
    assert body.rstrip().endswith(marker(4))


def test_rollout_states_read_as_sentences() -> None:
    running = render(PRStatus(**{**CHAIN.__dict__,
                                 "rollout": RolloutView("running", stage=2, stages=3)}))
    assert "running — stage 2 of 3" in running
    accepted = render(PRStatus(**{**CHAIN.__dict__, "rollout": RolloutView(
        "accepted", stages=3, score=0.934, tool_calls=42, tokens=18304, policy="replay")}))
    assert "accepted with score 0.93" in accepted
    assert "3 stages · 42 tool calls · 18,304 tokens · policy `replay`" in accepted
    rejected = render(PRStatus(**{**CHAIN.__dict__, "rollout": RolloutView(
        "rejected", score=0.41, reason="stage 2 failed its tests after 3 attempts")}))
    assert "rejected (score 0.41): `stage 2 failed its tests after 3 attempts`" in rejected


def test_untrusted_text_cannot_break_out_or_ping_people() -> None:
    evidence = "see | @octocat `rm -rf` <script>x</script>\n" + "y" * 500
    hostile = PRStatus(repository="o/r", number=9, chain_id="c", chain_prs=(8, 9),
                       links=(LinkView(8, 9, "references", evidence),),
                       config_problem="line 3: mapping values are not allowed here @admin")
    body = render(hostile)
    table_row = next(line for line in body.splitlines() if line.startswith("| 2 |"))
    assert table_row.count("|") == 5
    assert "@octocat" not in body and "@admin" not in body
    assert "`rm -rf`" not in body
    assert len(table_row) < 200
    assert "line 3: mapping values are not allowed here" in body


def test_a_pr_without_a_chain_says_so() -> None:
    body = render(PRStatus(repository="o/r", number=7))
    assert "has not joined a chain yet" in body
    assert marker(7) in body and marker(6) not in body
