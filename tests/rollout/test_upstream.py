"""Upstream work arrives between stages: merged where the agent's work allows, upstream wins."""

from __future__ import annotations

from pathlib import Path

from rollout.upstream import merge_upstream
from tests.gitrepo import GitRepo
from tests.rollout.sandboxes import open_sandbox

LINES = "".join(f"line {n}\n" for n in range(1, 21))


def test_upstream_changes_merge_into_the_agents_tree(tmp_path: Path) -> None:
    git = GitRepo.init(tmp_path / "repo")
    repo = git.path
    since = git.commit("PR k merged", {"merged.py": LINES, "clash.py": LINES, "quiet.py": LINES,
                                       "gone.py": "x = 1\n"})
    until = git.commit("other PRs, merged meanwhile", {
        "merged.py": LINES.replace("line 20\n", "line 20 upstream\n"),
        "clash.py": LINES.replace("line 3\n", "line 3 upstream\n"),
        "quiet.py": LINES + "appended upstream\n", "gone.py": None, "fresh.py": "new = True\n"})
    later = git.commit("a later PR", {"future.py": "secret = 42\n"})

    with open_sandbox(repo, since) as box:
        box.write_file("merged.py", LINES.replace("line 1\n", "line 1 agent\n"))
        box.write_file("clash.py", LINES.replace("line 3\n", "line 3 agent\n"))
        update = merge_upstream(box, repo, since, until)

        assert set(update.files) == {"merged.py", "clash.py", "quiet.py", "gone.py", "fresh.py"}
        assert set(update.merged) == {"merged.py", "clash.py"}
        assert update.conflicts == ("clash.py",)
        merged = box.read_file("merged.py")
        assert "line 1 agent" in merged and "line 20 upstream" in merged
        assert "line 3 upstream" in box.read_file("clash.py")
        assert box.read_file("quiet.py").endswith("appended upstream\n")
        assert box.read_file("fresh.py") == "new = True\n"
        assert "gone.py" not in box.list_dir(".")
        note = update.note()
        assert "clash.py" in note and "5 file(s)" in note
        # Still files only: nothing of the history, nor of the later PR, came along.
        assert box.exec("git rev-list --all | wc -l").stdout.strip() == "1"
        assert "future.py" not in box.list_dir(".")
        assert box.exec(f"git cat-file -e {later} 2>/dev/null || echo absent").stdout.strip() \
            == "absent"


def test_nothing_to_bring_when_the_next_pr_starts_at_the_merge(tmp_path: Path) -> None:
    git = GitRepo.init(tmp_path / "repo")
    only = git.commit("one", {"a.py": "a = 1\n"})
    with open_sandbox(git.path, only) as box:
        update = merge_upstream(box, git.path, only, only)
    assert update.files == () and update.note() == ""


def test_files_with_crlf_line_ends_come_across_unchanged(tmp_path: Path) -> None:
    """A CRLF file the agent left alone takes upstream's change through the patch, and one it
    changed merges three ways; neither loses its CRs (a text-mode read would, and the patch
    would then not apply)."""
    git = GitRepo.init(tmp_path / "repo")
    crlf = LINES.replace("\n", "\r\n")
    since = git.commit("PR k merged", {"dos.py": crlf.encode(), "both.py": crlf.encode()})
    until = git.commit("upstream", {
        "dos.py": crlf.replace("line 5\r\n", "line 5 upstream\r\n").encode(),
        "both.py": crlf.replace("line 20\r\n", "line 20 upstream\r\n").encode()})
    with open_sandbox(git.path, since) as box:
        box.write_file("both.py", crlf.replace("line 1\r\n", "line 1 agent\r\n"))
        update = merge_upstream(box, git.path, since, until)
        assert update.merged == ("both.py",) and update.conflicts == ()
        assert box.read_file("dos.py") == crlf.replace("line 5\r\n", "line 5 upstream\r\n")
        both = box.read_file("both.py")
        assert "line 1 agent\r\n" in both and "line 20 upstream\r\n" in both
        assert "\n" not in both.replace("\r\n", "")
