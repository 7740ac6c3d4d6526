from __future__ import annotations

import pytest

from bot.pr_commands import HELP, Command, is_trusted, parse, reply_marker, unknown_reply


@pytest.mark.parametrize("body,expected", [
    ("/davinci status", Command("status", "status")),
    ("Thanks!\n\n  /davinci   ROLLOUT please\n", Command("rollout", "rollout")),
    ("/davinci ignore", Command("ignore", "ignore")),
    ("/davinci", Command("help", "help")),
    ("/davinci launch-missiles", Command("unknown", "launch-missiles")),
])
def test_the_first_command_line_counts(body: str, expected: Command) -> None:
    assert parse(body) == expected


@pytest.mark.parametrize("body", [None, "", "see /davinci status in the docs", "`/davincix`",
                                  "/davincix status"])
def test_no_command_unless_a_line_starts_with_it(body: str | None) -> None:
    assert parse(body) is None


def test_only_maintainers_and_never_bots() -> None:
    assert is_trusted("OWNER", "User") and is_trusted("member", "User")
    assert is_trusted("COLLABORATOR", "User")
    for association in ("CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "NONE", None):
        assert not is_trusted(association, "User")
    assert not is_trusted("OWNER", "Bot")


def test_replies_are_marked_and_safe() -> None:
    assert reply_marker(77) == "<!-- davinci-agency:reply comment=77 -->"
    text = unknown_reply("@everyone`rm")
    assert "@" not in text.split("\n")[0] and "`/davinci everyonerm`" in text
    assert HELP in text
