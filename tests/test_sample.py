"""The sample repository behind the demo: the history the miner is meant to find."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.sample import build_sample_repository


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_history_has_both_merge_styles_in_merge_order(tmp_path: Path) -> None:
    sample = build_sample_repository(tmp_path / "textkit")
    subjects = git(sample.path, "log", "--first-parent", "--reverse", "--format=%s").splitlines()
    assert subjects == [
        "Initial import of textkit",
        "Merge pull request #1 from alice/slugify",
        "Merge pull request #3 from bob/report",
        "Merge pull request #2 from alice/slug-length",
        "Frequency report: skip stop words (#5)",
        "Fix trailing dash in shortened slugs (#4)",
        "Frequency report: break ties alphabetically (#6)",
        "Docs: usage examples (#7)",
    ]
    assert [pr.number for pr in sample.prs] == [1, 3, 2, 5, 4, 6, 7]
    assert git(sample.path, "rev-parse", "HEAD") == sample.merge_commits[7]


def test_every_pr_but_the_docs_one_touches_tests(tmp_path: Path) -> None:
    sample = build_sample_repository(tmp_path / "textkit")
    for pr in sample.prs:
        sha = sample.merge_commits[pr.number]
        changed = git(sample.path, "diff", "--name-only", f"{sha}^1", sha).splitlines()
        assert any(name.startswith("tests/") for name in changed) == (pr.number != 7), pr


def test_the_fix_changes_a_line_written_by_the_earlier_pr(tmp_path: Path) -> None:
    sample = build_sample_repository(tmp_path / "textkit")
    fix = sample.merge_commits[4]
    blame = git(sample.path, "blame", "--porcelain", "-L", "/return slug/,+1", f"{fix}^1",
                "--", "textkit/slug.py")
    blamed_commit = blame.split()[0]
    pr2_merge = sample.merge_commits[2]
    assert git(sample.path, "merge-base", "--is-ancestor", blamed_commit, pr2_merge) == ""
    assert blamed_commit == git(sample.path, "rev-parse", f"{pr2_merge}^2")


def test_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        build_sample_repository(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"
