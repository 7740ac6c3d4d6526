"""Task synthesis and gold validation on the three-PR fixture chain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from chains.model import PullRequest
from rollout import StageResult, Task, TaskError, TaskValidation, build_task, validate_task
from rollout.agent import rejection
from rollout.task import license_at
from rollout.validation import StageValidation
from rollout.verifier import Verifier
from sandbox.testinfra import is_test_infrastructure
from tests.gitrepo import GitRepo
from tests.rollout import sandboxes
from tests.rollout.fixture_repo import ChainRepo


def test_task_splits_each_pr_into_gold_and_test_patches(task: Task, chain_repo: ChainRepo) -> None:
    assert task.base_commit == chain_repo.prs[0].base_commit
    assert task.prs == (1, 2, 3)
    assert task.kinds == ("references", "fixes")
    for stage in task.stages:
        assert stage.gold_files == ("calc/stats.py",)
        assert stage.test_files == ("tests/test_stats.py",)
        assert "tests/test_stats.py" not in stage.gold_patch
        assert "calc/stats.py" not in stage.test_patch
    last = task.stages[2]
    assert "ordered = sorted(values)" in last.gold_patch
    assert "test_median_even" in last.test_patch
    # the README commit between PR 2 and PR 3 is in neither patch
    assert "README" not in last.gold_patch + last.test_patch


def test_template_instructions_do_not_leak_the_patch(task: Task) -> None:
    first, _, last = task.stages
    assert "mean and median" in first.instruction
    assert "```" not in first.instruction
    assert "values[len(values) // 2]" not in first.instruction
    assert "sorted(values)" not in last.instruction
    assert "Issue #7" in last.instruction and "median([3, 1, 2])" in last.instruction
    assert "fixes a problem introduced by the previous change" in last.instruction
    assert "3 related changes" in task.objective


def test_a_pr_without_code_changes_is_refused(chain_repo: ChainRepo) -> None:
    pr = chain_repo.prs[0]
    no_code = type(pr)(repository=pr.repository, number=9, title="t",
                       base_commit=pr.merge_commit, merge_commit=pr.merge_commit)
    with pytest.raises(TaskError, match="changes no code"):
        build_task(chain_repo.path, "c", [no_code])


def test_gold_validation_finds_fail_to_pass(validation: TaskValidation) -> None:
    assert validation.eligible, validation.reason
    one, two, three = validation.stages
    assert one.fail_to_pass == ("tests/test_stats.py::test_mean",
                                "tests/test_stats.py::test_median_sorted")
    # PR 2's tests import `variance`, so before its gold patch the whole module fails
    assert "tests/test_stats.py::test_variance" in two.fail_to_pass
    assert len(two.fail_to_pass) == 3 and two.pass_to_pass == ()
    assert three.fail_to_pass == ("tests/test_stats.py::test_median_even",
                                  "tests/test_stats.py::test_median_unsorted")
    assert len(three.pass_to_pass) == 3
    assert "test_median_unsorted" in three.log_before and "passed" in three.log_after


def test_each_stage_is_validated_on_its_own_base(chain_repo: ChainRepo,
                                                 open_sandbox: Callable) -> None:
    # PR 3 alone is fine: it is validated on its own base, where PR 1 and 2 are merged.
    task = build_task(chain_repo.path, "alone", [chain_repo.prs[2]])
    assert validate_task(task, open_sandbox(task.base_commit)).eligible
    # Recorded on PR 1's base, its gold patch misses the code that PR 1 and 2 added.
    wrong = replace(task.stages[0], base_commit=chain_repo.prs[0].base_commit)
    broken = replace(task, stages=(wrong,))
    validation = validate_task(broken, open_sandbox(broken.base_commit))
    assert not validation.eligible
    assert "gold patch does not apply" in validation.reason


def test_a_stage_without_tests_is_scored_by_similarity(task: Task, chain_repo: ChainRepo,
                                                       open_sandbox: Callable) -> None:
    stage = task.stages[1]
    verifier = Verifier(open_sandbox(stage.base_commit))
    untested = StageValidation(stage.pr, (), (), False, "no test fails before the gold patch")
    empty = verifier.verify(stage, untested, agent_patch="")
    gold = verifier.verify(stage, untested, agent_patch=stage.gold_patch)
    assert empty.resolved and empty.score == 0.0 and "no hidden tests" in empty.test_log
    assert gold.resolved and gold.score == 1.0


def test_acceptance_needs_every_verifiable_stage_resolved_by_the_agent(
        validation: TaskValidation) -> None:
    def stages(*verdicts: tuple[str, float]) -> list[StageResult]:
        return [StageResult(pr, "", verdict, score, 1)
                for pr, (verdict, score) in zip((1, 2, 3), verdicts, strict=True)]

    passed = ("passed", 1.0)
    assert rejection(stages(passed, passed, passed), "completed", 1.0, validation, 0.8) == ""
    # A mean of 0.9 does not hide a last stage that failed every attempt.
    failed_last = rejection(stages(passed, passed, ("failed", 0.7)), "stage_failed", 0.9,
                            validation, 0.8)
    assert "did not complete (stage_failed)" in failed_last
    gold = rejection(stages(passed, ("gold_applied", 0.9), passed), "completed", 0.97,
                     validation, 0.8)
    assert "#2" in gold and "not the agent's work" in gold
    assert "below 0.80" in rejection(stages(passed, passed, ("passed", 0.3)), "completed", 0.77,
                                     validation, 0.8)


def test_the_test_infrastructure_rule() -> None:
    infrastructure = ["conftest.py", "tests/conftest.py", "pytest.ini", "setup.cfg",
                      "pyproject.toml", "tox.ini", "pytest.py", "src/sitecustomize.py",
                      "lib/evil.pth"]
    code = ["src/pluggy/_hooks.py", "src/_pytest/main.py", "pkg/pytest.py", "sub/setup.cfg",
            "tests/test_conftest.py", "docs/pyproject.toml"]
    assert [p for p in infrastructure if not is_test_infrastructure(p)] == []
    assert [p for p in code if is_test_infrastructure(p)] == []


FLAKY_TEST = '''import pathlib, tempfile
from calc.core import double


def test_double():
    assert double(2) == 4


def test_sometimes():
    counter = pathlib.Path(tempfile.gettempdir(), "flaky-counter")
    seen = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(seen + 1))
    assert seen % 2 == 0
'''


def _validated_stage(tmp_path: Path, name: str, start: dict[str, str],
                     title: str, change: dict[str, str]) -> StageValidation:
    """The validation of a one-PR history: ``start``, then the PR ``title`` with ``change``."""
    repo = GitRepo.init(tmp_path / name)
    base = repo.commit("Start", start)
    merge = repo.commit(title, change)
    pr = PullRequest(repository=f"octo/{name}", number=1, title=title,
                     base_commit=base, merge_commit=merge)
    task = build_task(repo.path, name, [pr])
    with sandboxes.open_sandbox(repo.path, base) as box:
        return validate_task(task, box, runs=2).stages[0]


def test_a_test_that_changes_its_mind_is_not_evidence(tmp_path: Path) -> None:
    stage = _validated_stage(tmp_path, "flaky", {"calc/__init__.py": "", "calc/core.py": "X = 1\n"},
                             "Add double", {"calc/core.py": "X = 1\n\n\ndef double(x):\n"
                                                           "    return 2 * x\n",
                                            "tests/test_core.py": FLAKY_TEST})
    assert stage.fail_to_pass == ("tests/test_core.py::test_double",)
    assert stage.flaky == ("tests/test_core.py::test_sometimes",)
    assert "tests/test_core.py::test_sometimes" not in stage.pass_to_pass


def test_a_stage_whose_tests_fail_either_way_says_how(tmp_path: Path) -> None:
    """babel's tests need data files a build step downloads: every test fails before and
    after the gold patch, and the stage says so, with the error most of them report."""
    data = ("import pathlib\n\n\ndef table():\n"
            "    path = pathlib.Path(__file__).with_name('table.dat')\n"
            "    if not path.exists():\n"
            "        raise RuntimeError('the data files are not built: run make data')\n"
            "    return path.read_text()\n")
    tests = "".join(f"from calc.data import table\n\n\ndef test_{n}():\n"
                    f"    assert table()\n\n\n" for n in ("one", "two"))
    stage = _validated_stage(tmp_path, "nodata", {"calc/__init__.py": "", "calc/data.py": data},
                             "Read the table twice", {
                                 "calc/data.py": data.replace("return path.read_text()",
                                                              "return path.read_text() * 2"),
                                 "tests/test_data.py": tests})
    assert not stage.verifiable
    assert stage.reason == ("no test fails before the gold patch and passes after it (2 of 2 "
                            "fail with it too, 2 of them with: RuntimeError: the data files "
                            "are not built: run make data)")


def test_a_stage_whose_code_does_not_compile_here_says_so(tmp_path: Path) -> None:
    """toolz's 2015 code passes a bare generator with a trailing comma, a SyntaxError since
    Python 3.7: no test module imports, before or after the gold patch. The stage names the
    error, not only pytest's "collection failure"."""
    code = "def names(fs):\n    return ', '.join(\n        f.__name__ for f in fs,\n    )\n"
    stage = _validated_stage(tmp_path, "oldsyntax", {"calc/__init__.py": "", "calc/names.py": code},
                             "Name them in order", {
                                 "calc/names.py": code.replace("for f in fs",
                                                               "for f in sorted(fs, key=id)"),
                                 "tests/test_names.py": "from calc.names import names\n\n\n"
                                                        "def test_one():\n"
                                                        "    assert names([len]) == 'len'\n"})
    assert not stage.verifiable
    assert ("1 of them with: collection failure: SyntaxError: Generator expression must be "
            "parenthesized") in (stage.reason or ""), stage.reason


def test_the_licence_is_read_from_its_wording(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "lic")
    mit = repo.commit("mit", {"LICENSE": "MIT License\n\nPermission is hereby granted, free of\n"
                                         "charge, to any person obtaining a copy\n"})
    bsd = repo.commit("bsd", {"LICENSE": "Redistribution and use in source and binary forms\n"
                                         "...\nNeither the name of the copyright holder\n"})
    none = repo.commit("gone", {"LICENSE": None, "COPYING": "All rights reserved.\n"})
    assert [license_at(repo.path, c) for c in (mit, bsd, none)] == ["MIT", "BSD-3-Clause", ""]
