"""The leakage check, the template's stripping and the objective, on the fixture chain's real
patches (and the LLM writer against a local OpenAI-compatible server)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from rollout.instructions import (
    InstructionLeak,
    LLMWriter,
    TemplateWriter,
    check_leakage,
    human_text_of,
    strip_solution,
)
from rollout.llm import LLMClient, LLMConfig
from rollout.task import Task
from tests.llm_sim import LLMSim
from tests.rollout.fixture_repo import ChainRepo


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


@pytest.fixture
def variance_patch(task: Task) -> str:
    stage = task.stages[1]
    return stage.gold_patch + stage.test_patch


def test_a_name_only_the_patch_introduces_is_refused(variance_patch: str,
                                                     chain_repo: ChainRepo) -> None:
    draft = "Add a variance function that gives the population spread of a list of numbers."
    untold = replace(chain_repo.prs[1], title="Add a spread statistic",
                     body="Population spread, built on the mean.")

    with pytest.raises(InstructionLeak, match="names 'variance', which only the patch"):
        check_leakage(draft, variance_patch, 0.2, human_text_of(untold))

    check_leakage(draft, variance_patch, 0.2, human_text_of(chain_repo.prs[1]))  # "Add variance"


def test_a_value_the_hidden_tests_assert_is_refused(fix_patch: str,
                                                    chain_repo: ChainRepo) -> None:
    pr = chain_repo.prs[2]  # its issue says: median([3, 1, 2]) returns 1, expected 2

    with pytest.raises(InstructionLeak, match="gives '2.5', a value the hidden tests assert"):
        check_leakage("For four values the result should be 2.5.", fix_patch, 0.2,
                      human_text_of(pr))
    with pytest.raises(InstructionLeak, match="gives '4'"):
        check_leakage("Try it with 4 values.", fix_patch, 0.2, human_text_of(pr))

    check_leakage("For the input 3, 1, 2 it must give 2, not 1.", fix_patch, 0.2,
                  human_text_of(pr))


@pytest.mark.parametrize(("draft", "told", "leak"), [
    ('The greeting must read "Hello, Ada!" for Ada.', "", "'Hello, Ada!'"),
    ("Greeting Ada must work.", "", "'Ada'"),
    ("Greeting Ada must work.", "Greeting Ada fails", None),
    ("Greeting Adam must work, and Ada.", "greeting ada", "'Ada'"),  # case-sensitive
    ("Retries need a limit of 3 tries.", "", "'3'"),
    ("Retries need a limit of 3 tries.", "allow 3.5 or 13 tries", "'3'"),
    ("Retries need a limit; 13 and 3.5 are wrong.", "", None),  # not the number 3
    ("Raise MAX_RETRIES and use Greeter.", "", "'MAX_RETRIES'"),
    ("Use Greeter for this.", "", "'Greeter'"),
    ("Use greet for this.", "", None),  # greet existed before: its signature only changed
    ("Counts of 0 and 1 are fine; Ignored, not asserted too.", "", None),
])
def test_literals_and_names_are_whole_case_sensitive_tokens(draft: str, told: str,
                                                           leak: str | None) -> None:
    patch = """diff --git a/app/greet.py b/app/greet.py
--- a/app/greet.py
+++ b/app/greet.py
@@ -1,2 +1,8 @@
+MAX_RETRIES = 3
+
+class Greeter:
+    def __init__(self):
+        self.count = 0
-def greet(name):
+def greet(name, polite=True):
diff --git a/tests/test_greet.py b/tests/test_greet.py
--- a/tests/test_greet.py
+++ b/tests/test_greet.py
@@ -1,1 +1,4 @@
+    assert greet("Ada") == "Hello, Ada!"
+    self.assertEqual(retries(), 3)
+    assert greet("x") and greeting(1) == 0
+    helper_value = "Ignored, not asserted"
"""
    if leak is None:
        check_leakage(draft, patch, 0.2, told)
    else:
        with pytest.raises(InstructionLeak, match=re.escape(leak)):
            check_leakage(draft, patch, 0.2, told)


def test_the_objective_must_not_leak_the_chain_either(llm_sim: LLMSim, task: Task,
                                                      chain_repo: ChainRepo) -> None:
    patch = "".join(stage.gold_patch + stage.test_patch for stage in task.stages)
    llm_sim.reply("Statistics that are right for any input, e.g. 2.5 for [4, 1, 3, 2].")
    llm_sim.reply("Grow calc into correct summary statistics: mean, median and variance.")
    writer = LLMWriter(LLMClient(LLMConfig(base_url=llm_sim.base_url, model="writer")))

    objective = writer.objective(chain_repo.prs, patch)

    assert objective == "Grow calc into correct summary statistics: mean, median and variance."
    assert writer.rejected == [(None, llm_sim.requests[1]["messages"][2]["content"],
                                "gives '2.5', a value the hidden tests assert")]
    assert "Rejected: it gives '2.5'" in llm_sim.requests[1]["messages"][3]["content"]


def test_an_objective_that_keeps_leaking_falls_back_to_the_template(
        llm_sim: LLMSim, task: Task, chain_repo: ChainRepo) -> None:
    patch = "".join(stage.gold_patch + stage.test_patch for stage in task.stages)
    for _ in range(2):
        llm_sim.reply("Make the median of [4, 1, 3, 2] come out as 2.5.")
    writer = LLMWriter(LLMClient(LLMConfig(base_url=llm_sim.base_url, model="writer")),
                       attempts=2)

    objective = writer.objective(chain_repo.prs, patch)

    assert objective == TemplateWriter().objective(chain_repo.prs, patch)
    assert len(writer.rejected) == 2 and len(llm_sim.requests) == 2
