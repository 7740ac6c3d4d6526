"""The Sandbox protocol on both backends: files, diffs, patches, resets."""

from __future__ import annotations

import pytest

from bot.sample import SampleRepository
from sandbox.base import PatchConflict, PathOutsideWorkTree, Sandbox, SandboxError


def test_runs_commands_in_the_work_tree_at_the_commit(box: Sandbox,
                                                      sample: SampleRepository) -> None:
    assert box.start_commit == sample.merge_commits[2]
    result = box.exec("git rev-parse HEAD && ls")
    assert result.ok and result.stdout.split()[0] == sample.merge_commits[2]
    assert "textkit" in result.stdout and result.duration > 0


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
