"""One diff reader and one test-file rule, for mining, the GitHub source and rollouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from chains.diff import parse_diff, patch_hunks
from chains.gitsource import GitHistory
from chains.model import Hunk, LineRange
from chains.paths import is_doc_path, is_test_path
from rollout.gitdiff import parse_patch, split_change
from tests.gitrepo import GitRepo


def test_github_patch_ranges_and_lines() -> None:
    patch = ("@@ -1,4 +1,5 @@\n a\n-b\n-c\n+B\n d\n+e\n+f\n@@ -10,2 +11,1 @@\n x\n-y\n"
             "\\ No newline at end of file")
    hunks = patch_hunks(patch, with_lines=True)
    assert hunks.old_ranges == (LineRange(2, 3), LineRange(11, 11))
    assert hunks.new_ranges == (LineRange(2, 2), LineRange(4, 5))
    assert (hunks.removed, hunks.added) == (("b", "c", "y"), ("B", "e", "f"))
    assert hunks.spans == (Hunk(LineRange(1, 4), LineRange(1, 5)),
                           Hunk(LineRange(10, 11), LineRange(11, 11)))


def test_hunks_without_context_keep_where_each_side_sits() -> None:
    """Without context a hunk that only inserts or only deletes has one empty side; a
    removed line can be followed to the lines that replaced it."""
    patch = "@@ -5,0 +6,2 @@\n+p\n+q\n@@ -9 +11,3 @@\n-r\n+try:\n+    r\n+except E:\n" \
            "@@ -20,2 +23,0 @@\n-s\n-t"
    assert patch_hunks(patch).spans == (Hunk(None, LineRange(6, 7)),
                                        Hunk(LineRange(9, 9), LineRange(11, 13)),
                                        Hunk(LineRange(20, 21), None))


def test_content_that_looks_like_file_headers_is_content(tmp_path: Path) -> None:
    """A removed "-- x" prints as "--- x" and an added "++ y" as "+++ y": with context
    (a rollout's patch) and without (mining's stream) they are still lines of the file."""
    repo = GitRepo.init(tmp_path / "sql")
    base = repo.commit("init", {"schema.sql": "-- users\nCREATE TABLE a (x int);\n-- end\n"
                                              "SELECT 1;\n", "gone.txt": "bye\n"})
    head = repo.commit("rework", {"schema.sql": "++ kept\nCREATE TABLE a (x int);\nSELECT 1;\n",
                                  "gone.txt": None})
    for context in ("-U0", "-U3"):
        diff = repo.git("diff", context, base, head)
        files = {f.path: f for f in parse_diff(diff, with_lines=True)}
        schema = files["schema.sql"]
        assert schema.old_ranges == (LineRange(1, 1), LineRange(3, 3))
        assert schema.new_ranges == (LineRange(1, 1),)
        assert schema.removed_lines == ("-- users", "-- end")
        assert schema.added_lines == ("++ kept",)
        assert files["gone.txt"].status == "removed" and files["gone.txt"].deletions == 1
    lines = parse_patch(repo.git("diff", base, head), include_tests=True)
    assert "-- end" in lines.removed and "++ kept" in lines.added


def test_mining_reads_the_same_lines(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "sql")
    repo.commit("init", {"schema.sql": "-- users\nCREATE TABLE a (x int);\n-- end\nSELECT 1;\n"})
    repo.pull_request(3, "Rework schema", {"schema.sql": "++ kept\nCREATE TABLE a (x int);\n"
                                                          "SELECT 1;\n"}, squash=True)
    [pr] = GitHistory(repo.path).pull_requests()
    [schema] = pr.files
    assert (schema.additions, schema.deletions) == (1, 2)


@pytest.mark.parametrize(("path", "expected"), [
    ("tests/test_stats.py", True), ("pkg/test/helpers.py", True), ("test_x.py", True),
    ("src/thing_test.py", True), ("conftest.py", True), ("app/tests.py", True),
    ("src/Tests/Helpers.py", True), ("web/__tests__/a.js", True), ("a/b.test.ts", True),
    ("src/trio/_core/_tests/tutil.py", True),
    ("calc/stats.py", False), ("calc/testing_utils.py", False), ("docs/tests.md", False),
    ("contest/entry.py", False), ("src/attest.py", False)])
def test_one_rule_says_what_a_test_file_is(path: str, expected: bool) -> None:
    assert is_test_path(path) is expected


def test_mining_and_rollouts_split_a_pr_the_same_way(tmp_path: Path) -> None:
    """`app/tests.py` (Django's layout) is test code when mining and in a rollout's split."""
    repo = GitRepo.init(tmp_path / "dj")
    base = repo.commit("init", {"app/models.py": "X = 1\n"})
    head = repo.commit("work", {"app/models.py": "X = 2\n", "app/tests.py": "def test(): pass\n",
                                "docs/usage.rst": "x\n"})
    split = split_change(repo.path, base, head)
    assert split.test_files == ("app/tests.py",)
    assert set(split.gold_files) == {"app/models.py", "docs/usage.rst"}
    assert [p for p in split.test_files if not is_test_path(p)] == []
    assert is_doc_path("docs/usage.rst") and not is_doc_path("requirements-dev.txt")


def test_paths_git_quotes_are_read_back(tmp_path: Path) -> None:
    """Names with a tab, a quote, " b/" or non-ASCII letters, as mining's stream prints them."""
    repo = GitRepo.init(tmp_path / "names")
    repo.commit("init", {"tab\there.py": "x\n", 'quo"te b/x.py': "y\n", "ünï.py": "z\n"})
    repo.rename('quo"te b/x.py', "new name.py")
    repo.pull_request(4, "Touch odd names", {"tab\there.py": "x2\n", "ünï.py": "z2\n"},
                      squash=True)
    [pr] = GitHistory(repo.path).pull_requests()
    files = {f.path: f for f in pr.files}
    assert set(files) == {"new name.py", "tab\there.py", "ünï.py"}
    assert files["new name.py"].old_path == 'quo"te b/x.py'
    assert files["tab\there.py"].new_ranges == (LineRange(1, 1),)
