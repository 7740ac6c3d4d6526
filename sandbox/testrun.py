"""Run a stage's tests in a sandbox and read the outcome of every test from JUnit XML."""

from __future__ import annotations

import shlex
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - the XML is written by pytest in the sandbox
from dataclasses import dataclass, field

from sandbox.base import Sandbox

DEFAULT_RUNNER = "python3 -m pytest"
PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"


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

    def passed(self, test_id: str) -> bool:
        return self.outcomes.get(test_id) == PASSED


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
    command = (f"PYTHONDONTWRITEBYTECODE=1 {runner} -p no:cacheprovider -q -rfE "
               f"--junitxml={report} {files}")
    result = sandbox.exec(command, timeout=timeout)
    log = result.stdout + result.stderr
    if result.timed_out:
        return TestRun(log=log, exit_code=result.exit_code, duration=result.duration,
                       error=f"tests timed out after {timeout:.0f}s")
    xml = sandbox.exec(f"cat {report} && rm -f {report}", timeout=30)
    if not xml.ok or not xml.stdout.strip():
        return TestRun(log=log, exit_code=result.exit_code, duration=result.duration,
                       error="the test runner wrote no report (is pytest installed?)")
    try:
        outcomes, messages = parse_junit(xml.stdout)
    except ET.ParseError as exc:
        return TestRun(log=log, exit_code=result.exit_code, duration=result.duration,
                       error=f"unreadable test report: {exc}")
    return TestRun(outcomes=outcomes, messages=messages, log=log, exit_code=result.exit_code,
                   duration=result.duration)


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
            messages[test_id] = (problem.get("message", "") + "\n" + (problem.text or "")).strip()
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
