"""Run a stage's tests in a sandbox and read the outcome of every test from JUnit XML.

:func:`run_tests` is a plain run, as a developer would type it. :func:`run_hidden` is the
verifier's run, which the agent cannot touch: every process the agent started is ended
first, the test harness (every test file and the test infrastructure) is put in its reference
state (sandbox.testinfra), pytest
starts isolated (``python3 -I``, its plugins imported before the work tree joins the path,
explicit ``--rootdir`` and ``-c``), the report goes to a folder made after the agent's
processes are gone, and afterwards the agent's own files are put back.
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - the XML is written by pytest in the sandbox
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chains import paths
from sandbox import testinfra
from sandbox.base import ExecResult, Sandbox, SandboxError
from sandbox.tree import state_blobs, state_files

DEFAULT_RUNNER = "python3 -m pytest"
PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Integrity:
    """What the hidden run did so that the agent could not touch it (kept for the audit)."""

    processes_ended: int
    """The agent's processes ended before the run, and those the run left behind after it."""
    set_aside: tuple[str, ...]
    """The agent's files moved away for the run: harness files that were not the
    reference's."""
    restored: tuple[str, ...]
    """Files written from the reference: the harness files the agent's tree did not have as
    the reference has them."""
    isolated: bool
    """Whether pytest was started isolated (False for a configured runner that is not
    pytest, which runs as configured)."""
    config: str
    """The configuration file pytest was given (`-c`)."""

    def to_dict(self) -> dict[str, object]:
        return {"processes_ended": self.processes_ended, "set_aside": list(self.set_aside),
                "restored": list(self.restored), "isolated": self.isolated,
                "config": self.config}


@dataclass(frozen=True)
class TestRun:
    outcomes: dict[str, str] = field(default_factory=dict)
    """Test id (`file::Class::name`) -> passed, failed or skipped."""
    messages: dict[str, str] = field(default_factory=dict)
    """Test id -> the failure or error text pytest reported."""
    log: str = ""
    exit_code: int = 0
    duration: float = 0.0
    error: str | None = None
    """Why no outcome could be read (runner missing, collection crashed, timeout)."""
    integrity: Integrity | None = None
    """Set by :func:`run_hidden`."""

    def passed(self, test_id: str) -> bool:
        return self.outcomes.get(test_id) == PASSED


PYTEST_OPTIONS = ("-p no:cacheprovider -q -rfE --continue-on-collection-errors "
                  "-W 'ignore:The hook:pytest.PytestDeprecationWarning'")
"""Every run's pytest options. A test file that cannot be collected (tomlkit's conftest
parametrizes one file from a git submodule the sandbox does not hold) errs alone: its tests
have no outcome, so none of them passes, and the other files still run. A plugin of the
state's days that marks its hooks the old way (pytest-cov 2's `@pytest.mark.tryfirst`) is
deprecated by the newer pytest an environment may hold (`environment.MODERN_PYTEST`), and
a project whose warnings are errors did not start (starlette): the project never saw that
warning, the runs ignore it."""


def run_tests(sandbox: Sandbox, targets: tuple[str, ...], timeout: float,
              runner: str = DEFAULT_RUNNER) -> TestRun:
    """Run ``targets`` (files or pytest node ids) and read every test's outcome.

    ``runner`` is the repository's test command (`test` in `.github/davinci.yml`); it must
    accept pytest's arguments, since the report comes from `--junitxml`.
    """
    if not targets:
        return TestRun(error="the stage has no test files to run")
    report = f"/tmp/davinci-junit-{uuid.uuid4().hex}.xml"  # noqa: S108 - inside the sandbox
    files = " ".join(shlex.quote(t) for t in targets)
    command = f"PYTHONDONTWRITEBYTECODE=1 {runner} {PYTEST_OPTIONS} --junitxml={report} {files}"
    result = sandbox.exec(command, timeout=timeout)
    if result.timed_out:
        return _read(result, None, timeout)
    xml = sandbox.exec(f"cat {report} && rm -f {report}", timeout=30)
    return _read(result, xml.stdout if xml.ok else None, timeout)


@dataclass(frozen=True)
class ReferenceFile:
    """A file of the test harness as the reference (the PR's merge) has it."""

    path: str
    content: bytes
    mode: str = "100644"
    """git's: 100755 an executable, 120000 a symbolic link (``content`` is its target)."""


@dataclass(frozen=True)
class HiddenTests:
    """Everything the verifier's run needs, all taken from the reference (the PR's merge)."""

    targets: tuple[str, ...]
    files: tuple[tuple[str, str | None], ...]
    """The stages' test files (None: absent in the reference, removed for the run)."""
    harness: tuple[ReferenceFile, ...]
    """Every harness file of the reference (testinfra.is_harness): its test files, helpers
    and data, and its test infrastructure."""
    runner: str = DEFAULT_RUNNER
    timeout: float = 300.0
    """The whole run's limit."""
    test_timeout: float = 60.0
    """Each test phase's limit (set-up, call, tear-down), past which that test fails and the
    run goes on (pytest runs only: testinfra.SHIM)."""


def reference_harness(repo: Path, commit: str) -> tuple[ReferenceFile, ...]:
    """Every harness file of ``commit`` in the git repository ``repo``, those of the
    submodules the sandbox holds too (a test suite's data kept as a submodule)."""
    files = [f for f in state_files(repo, commit)
             if f.kind == "blob" and testinfra.is_harness(f.path)]
    content = state_blobs(files)
    return tuple(ReferenceFile(f.path, content[(f.store, f.sha)], f.mode) for f in files)


_MODULES = tuple((module.__name__, Path(str(module.__file__)).read_text())
                 for module in (paths, testinfra))
"""What the sandbox's side of the hidden run executes (testinfra.BOOT)."""
REPORT_CAP = 64 << 20
"""The most of the verifier's step's answer read back: it carries the test report, one line
of XML per test (a suite of many thousand parametrized tests writes megabytes)."""
PREIMPORTED = "-W ignore::pytest.PytestAssertRewriteWarning"
"""What the runner's early import of the plugins costs, not the project's concern."""


def run_hidden(sandbox: Sandbox, tests: HiddenTests) -> TestRun:
    """The verifier's run of ``tests``; see the module docstring for what it guards against."""
    if not tests.targets:
        return TestRun(error="the stage has no test files to run")
    ended = sandbox.end_processes()
    write = {path: testinfra.encode(None if content is None
                                    else content.encode("utf-8", "surrogateescape"))
             for path, content in tests.files}
    write.update((f.path, testinfra.encode(f.content, f.mode)) for f in tests.harness)
    prepared = _infra_step(sandbox, {"step": "prepare", "write": write})
    folder, written = str(prepared["dir"]), list(prepared["written"])
    if prepared.get("error"):
        if folder:
            _infra_step(sandbox, {"step": "restore", "dir": folder, "written": written})
        return TestRun(error=f"the hidden tests could not be put in place: {prepared['error']}",
                       integrity=Integrity(ended, tuple(prepared["set_aside"]), tuple(written),
                                           False, ""))
    try:
        config = testinfra.pytest_config({f.path: f.content for f in tests.harness})
        private = shlex.quote(folder)
        config_path = f'"$PWD"/{shlex.quote(config)}' if config else f"{private}/pytest.ini"
        options = (f"{PYTEST_OPTIONS} --junitxml={private}/report.xml "
                   f'--rootdir="$PWD" -c {config_path} '
                   + " ".join(shlex.quote(t) for t in tests.targets))
        prefix = isolated_runner(tests.runner)
        # The runner imports the installed plugins before pytest can rewrite their asserts;
        # pytest warns of that, and a project whose warnings are errors would not start.
        command = (f'{prefix} {private}/run.py "$PWD" {tests.test_timeout:g} {PREIMPORTED} '
                   f'{options}'
                   if prefix is not None
                   else f"PYTHONDONTWRITEBYTECODE=1 {tests.runner} {options}")
        result = sandbox.exec(command, timeout=tests.timeout)
    finally:
        ended += sandbox.end_processes()
        restored = _infra_step(sandbox, {"step": "restore", "dir": folder, "written": written})
    report = restored.get("report")
    integrity = Integrity(ended, tuple(prepared["set_aside"]), tuple(written),
                          prefix is not None, config or "(none: an empty one)")
    run = _read(result, report if isinstance(report, str) else None, tests.timeout)
    contradicted = _contradicted(run) if prefix is not None else []
    if contradicted:
        run = replace(run, error="the test report says passed what the runner printed as "
                                 f"failed while the tests ran ({', '.join(contradicted[:5])}): "
                                 "the report was rewritten after pytest wrote it")
    return replace(run, integrity=integrity)


_PRINTED_FAILURE = re.compile(r"(?m)^(?:FAILED|ERROR) (\S+)")
"""A line of pytest's short test summary (`-rfE`), printed as the tests ran."""


def _contradicted(run: TestRun) -> list[str]:
    """Tests pytest's own summary printed as failed that the report says passed: code under
    test runs in pytest's process and could rewrite the report once written, but not take
    back what was already printed."""
    printed = {m.group(1) for m in _PRINTED_FAILURE.finditer(run.log)}
    return sorted(test for test in printed if run.outcomes.get(test) == PASSED)


def isolated_runner(runner: str) -> str | None:
    """How to start ``runner`` isolated, when it is pytest: `python3 -I -B`; else None."""
    try:
        words = shlex.split(runner)
    except ValueError:
        return None
    if words[:3] in (["python3", "-m", "pytest"], ["python", "-m", "pytest"]):
        python, rest = words[0], words[3:]
    elif words[:1] in (["pytest"], ["py.test"]):
        python, rest = "python3", words[1:]
    else:
        return None
    return " ".join(shlex.quote(w) for w in [python, "-I", "-B"]) + (
        " " + " ".join(shlex.quote(w) for w in rest) if rest else "")


def _infra_step(sandbox: Sandbox, request: Mapping[str, object]) -> dict[str, Any]:
    result = sandbox.exec(f"python3 -I -c {shlex.quote(testinfra.BOOT)}", timeout=120,
                          stdin=json.dumps({**request, "modules": _MODULES}).encode(),
                          output_cap=REPORT_CAP)
    if result.stdout_truncated:
        raise SandboxError(f"could not {request['step']} the hidden test run: its answer (the "
                           f"test report) is larger than {REPORT_CAP >> 20} MiB")
    try:
        answer = json.loads(result.stdout) if result.ok else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        said = (result.stderr or result.stdout).strip()[-500:]
        how = ("it timed out after 120 s" if result.timed_out
               else f"it exited with {result.exit_code}" + (f": {said}" if said else
                                                            " and printed nothing"))
        raise SandboxError(f"could not {request['step']} the hidden test run: {how}")
    return answer


def _no_report(log: str) -> str:
    """Why the runner wrote no report, from its output: pytest's first error line (`E   …`,
    an `ImportError while loading conftest`), else the last line."""
    errors = re.findall(r"(?m)^E\s+(\S.*)$", log)
    if errors:
        return f"the tests could not start: {errors[-1].strip()[:300]}"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    if lines and re.search(r"No module named pytest|pytest: not found|command not found",
                           lines[-1]):
        return f"the test runner is missing: {lines[-1][:300]}"
    last = f": {lines[-1][:300]}" if lines else " and printed nothing"
    return f"the test runner wrote no report{last}"


def _read(result: ExecResult, report: str | None, timeout: float) -> TestRun:
    """The outcome of every test in ``report``, or why there is none."""
    run = TestRun(log=result.stdout + result.stderr, exit_code=result.exit_code,
                  duration=result.duration)
    if result.timed_out:
        return replace(run, error=f"tests timed out after {timeout:.0f}s")
    if not report or not report.strip():
        return replace(run, error=_no_report(run.log))
    try:
        outcomes, messages = parse_junit(report)
    except ET.ParseError as exc:
        return replace(run, error=f"unreadable test report: {exc}")
    return replace(run, outcomes=outcomes, messages=messages)


_RAISED = re.compile(r"(?m)^E\s+([A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit)\b.*)$")


def _headline(message: str, details: str) -> str:
    """A failure's first line: pytest's message, and for a module it could not collect (the
    message is only "collection failure") the error its traceback ends with, so a reason
    reads "collection failure: SyntaxError: Generator expression must be parenthesized"
    (2015 code on Python 3.9) rather than the same words for every cause."""
    raised = _RAISED.findall(details) if message == "collection failure" else []
    return f"{message}: {raised[-1].strip()}" if raised else message


def parse_junit(text: str) -> tuple[dict[str, str], dict[str, str]]:
    root = ET.fromstring(text)  # noqa: S314 - produced by pytest in our sandbox
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    for case in root.iter("testcase"):
        test_id = _test_id(case.get("classname", ""), case.get("name", ""))
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            outcomes[test_id] = FAILED
            messages[test_id] = (_headline(problem.get("message", ""), problem.text or "")
                                 + "\n" + (problem.text or "")).strip()
        elif case.find("skipped") is not None:
            outcomes[test_id] = SKIPPED
        else:
            outcomes[test_id] = PASSED
    return outcomes, messages


def _test_id(classname: str, name: str) -> str:
    """pytest's classname is the dotted module (and class); turn it back into a node id."""
    parts = classname.split(".") if classname else []
    classes: list[str] = []
    while parts and parts[-1][:1].isupper():
        classes.insert(0, parts.pop())
    module = "/".join(parts) + ".py" if parts else ""
    return "::".join([p for p in (module, *classes, name) if p])
