"""The Sandbox protocol on both backends: files, diffs, patches, resets."""

from __future__ import annotations

import subprocess

import pytest

from bot.sample import SampleRepository
from sandbox.base import PatchConflict, PathOutsideWorkTree, Sandbox, SandboxError


def test_runs_commands_in_the_work_tree_at_the_commit(box: Sandbox,
                                                      sample: SampleRepository) -> None:
    assert box.start_commit == sample.merge_commits[2]
    result = box.exec("git rev-parse 'HEAD^{tree}' && ls")
    assert result.ok and result.stdout.split()[0] == _host(sample, "rev-parse",
                                                           f"{sample.merge_commits[2]}^{{tree}}")
    assert "textkit" in result.stdout and result.duration > 0


def test_the_sandbox_holds_no_history_and_no_future(box: Sandbox,
                                                    sample: SampleRepository) -> None:
    """Every later merge (each gold patch and hidden test) is out of reach, however asked."""
    later = sample.merge_commits[4]
    later_blob = _host(sample, "rev-parse", f"{later}:textkit/slug.py")
    probes = {
        "git log --all --oneline | wc -l": "1",
        "git rev-list --all --reflog | wc -l": "1",
        "git tag | wc -l; git stash list | wc -l": "0\n0",
        "git for-each-ref | wc -l": "1",
        "git cat-file --batch-all-objects --batch-check | grep -c " + later_blob[:12]
        + " || true": "0",
        "git fsck --lost-found --no-reflogs 2>&1 | grep -c dangling || true": "0",
        "ls .git/FETCH_HEAD .git/ORIG_HEAD .git/packed-refs 2>/dev/null | wc -l": "0",
        "git cat-file -e " + later + " 2>/dev/null && echo found || echo absent": "absent",
    }
    for command, expected in probes.items():
        result = box.exec(command)
        assert result.stdout.strip() == expected, (command, result.stdout, result.stderr)
    box.reset(later)  # a later stage's start arrives the same way: files, not history
    assert box.exec("git rev-list --all | wc -l").stdout.strip() == "1"
    assert box.exec(f"git cat-file -e {later} 2>/dev/null || echo absent").stdout.strip() \
        == "absent"


def test_reset_ends_what_the_agent_left_running(box: Sandbox,
                                                sample: SampleRepository) -> None:
    box.exec("setsid nohup sh -c 'while :; do date >> ../ticks; sleep 0.05; done' "
             ">/dev/null 2>&1 & sleep 0.3")
    assert box.end_processes() >= 1
    assert box.end_processes() == 0
    box.exec("setsid nohup sh -c 'while :; do touch stray; sleep 0.05; done' "
             ">/dev/null 2>&1 & sleep 0.3")
    box.reset(sample.merge_commits[2])
    assert "stray" not in box.list_dir(".")
    assert box.exec("sleep 0.3; ls stray 2>/dev/null || echo gone").stdout.strip() == "gone"


def _host(sample: SampleRepository, *args: str) -> str:
    return subprocess.run(["git", "-C", str(sample.path), *args], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_files_round_trip_and_paths_stay_inside(box: Sandbox) -> None:
    box.write_file("notes/todo.txt", "first line\nsecond — ünïcode\n")
    assert box.read_file("notes/todo.txt") == "first line\nsecond — ünïcode\n"
    assert "notes/" in box.list_dir(".") and box.list_dir("notes") == ["todo.txt"]
    for bad in ("../outside.txt", "/etc/passwd", "notes/../../x"):
        with pytest.raises(PathOutsideWorkTree):
            box.write_file(bad, "x")
        with pytest.raises(PathOutsideWorkTree):
            box.read_file(bad)
    with pytest.raises(SandboxError):
        box.read_file("missing.txt")


def test_diff_apply_and_reset(box: Sandbox, sample: SampleRepository) -> None:
    box.write_file("textkit/slug.py", box.read_file("textkit/slug.py") + "\nEXTRA = 1\n")
    box.write_file("new_module.py", "VALUE = 2\n")
    patch = box.diff()
    assert "+EXTRA = 1" in patch and "new_module.py" in patch
    box.reset(sample.merge_commits[2])
    assert box.diff() == ""
    box.apply_patch(patch)
    assert box.read_file("new_module.py") == "VALUE = 2\n"
    box.apply_patch(patch, reverse=True)
    assert box.diff() == ""
    box.apply_patch(patch)
    with pytest.raises(PatchConflict, match="does not apply"):
        box.apply_patch(patch)
    box.reset(sample.merge_commits[4])
    assert 'rstrip("-")' in box.read_file("textkit/slug.py")


def test_output_is_capped_with_a_marker(box: Sandbox) -> None:
    result = box.exec("yes hello | head -c 5000000; echo done >&2")
    assert result.stdout_truncated and not result.stderr_truncated
    assert "output truncated" in result.stdout and len(result.stdout) < 400_000
    assert result.stderr.strip() == "done"
