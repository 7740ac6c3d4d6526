"""The leakage check and the template's stripping, on a real patch from the fixture chain."""

from __future__ import annotations

import pytest

from rollout.instructions import InstructionLeak, check_leakage, strip_solution
from rollout.task import Task


@pytest.fixture
def fix_patch(task: Task) -> str:
    stage = task.stages[2]
    return stage.gold_patch + stage.test_patch


@pytest.mark.parametrize("text", [
    "Use this:\n```\nanything\n```",
    "diff --git a/x b/x\n@@ -1 +1 @@",
    "Make it return (ordered[middle - 1] + ordered[middle]) / 2 for even input.",
    "Write ordered = sorted(values), then middle = len(ordered) // 2 and "
    "if len(ordered) % 2 == 0: and return ordered[middle].",
])
def test_leaking_text_is_refused(text: str, fix_patch: str) -> None:
    with pytest.raises(InstructionLeak):
        check_leakage(text, fix_patch, threshold=0.2)


def test_a_request_in_plain_words_passes(fix_patch: str) -> None:
    check_leakage("median is wrong for unsorted lists and for an even number of values; "
                  "it should sort first and average the two middle values.", fix_patch, 0.2)


def test_stripping_removes_code_and_patch_lines_but_keeps_prose(fix_patch: str) -> None:
    body = ("Median is wrong for unsorted input.\n\n```python\nreturn ordered[middle]\n```\n"
            "    indented_code()\n+    ordered = sorted(values)\n@@ -1,2 +1,3 @@\n"
            "- keep this bullet\nThanks!")
    assert strip_solution(body, fix_patch) == (
        "Median is wrong for unsorted input.\n\n- keep this bullet\nThanks!")
