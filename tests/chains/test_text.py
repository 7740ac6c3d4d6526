"""What PR text says: evidence snippets, reverts, restores and merges git wrote."""

from __future__ import annotations

import pytest

from chains import text


def test_evidence_is_cut_at_word_boundaries() -> None:
    body = ("Some unrelated preamble that goes on for a good while before it finally says "
            "this continues the frobnicator work of #123 and then keeps talking about other "
            "things for much longer than anyone needs")
    found = text.snippet(body, body.index("#123"))
    assert found.startswith("…") and found.endswith("…") and "#123" in found
    words = set(body.split())
    assert all(word in words for word in found.strip("…").split())
    assert text.snippet("Follow-up of #12", 13) == "Follow-up of #12"


@pytest.mark.parametrize(("message", "shas"), [
    ("This reverts commit 0a1b2c3d4e5f.", ["0a1b2c3d4e5f"]),
    ("Reverting 1a2b3c4, it broke the build", ["1a2b3c4"]),
    ("revert deadbeef", []),  # all letters: a word, not a name
    ("reverted 1234567 times", []),  # all digits: a number
])
def test_reverted_commits(message: str, shas: list[str]) -> None:
    assert text.reverted_commits(message) == shas


def test_restores_and_merges_git_wrote() -> None:
    assert text.is_restore("Restore Schema.fields") and text.is_restore("Re-add the cache")
    assert not text.is_restore("Restoration of order") and not text.is_restore("Add restore")
    assert text.is_merge_message("Merge pull request #2 from someone/master")
    assert text.is_merge_message("Merge branch 'main' into feature")
    assert not text.is_merge_message("Merge sort: fix the pivot")


@pytest.mark.parametrize(("title", "sweep"), [
    ("Fix flake8 issues", True),
    ("fix: root logger use found by ruff LOG", True),
    ("Fix compatibility with pyright 1.1.394", True),
    ("Fix mypy tests", False),
    ("Fix crash with mypy plugin", False),
    ("Fix compatibility with Python 3.13", False),
    ("Fix error reported by users", False),
])
def test_what_a_checker_reported_fixed_is_a_sweep(title: str, sweep: bool) -> None:
    assert text.is_sweep(title) is sweep


@pytest.mark.parametrize(("title", "release"), [
    ("Release 1.20.0", True), ("Proposed 2.8.0", True), ("Final 2.8.0", True),
    ("Version 0.47.3", True), ("Bump version to 3.1.0", True), ("Prepare 1.2.0 release", True),
    ("v2.0.0rc1", True),
    ("Fix the release 1.2 crash", False), ("Release notes for 1.2 and fixes", False),
    ("Support Python 3.12", False), ("Bump attrs to 23.1", False),
])
def test_a_title_that_only_names_a_version_is_a_release(title: str, release: bool) -> None:
    assert text.is_release(title) is release


def test_topic_words_leave_out_what_every_description_shares() -> None:
    """A PR's topic is its own words: not the function words and PR vocabulary every text
    has, nor links, commit trailers, or a PR template's headings, checklist and comments,
    which would make any two PRs of a repository look alike."""
    body = ("Fix the Response.stream bug when the body is empty\n\n"
            "## Summary of the changes\n"
            "<!-- Describe your change.\nLink the issue it fixes. -->\n"
            "- [x] Add tests that fail without the change\n"
            "- [ ] Add a changelog entry\n"
            "See https://github.com/acme/web/pull/12 for details\n\n"
            "Co-authored-by: Dana Example <dana@example.org>\n"
            "Signed-off-by: Lee Example <lee@example.org>\n")
    assert text.topic_words(body) == {"response", "stream", "body", "empty", "details"}
    assert text.topic_words("") == frozenset()
