"""The lock files (requirements/*.txt) agree with pyproject.toml: a dependency added or narrowed
there without running scripts/lock.sh fails here, naming what to do."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "requirements" / "runtime.txt"
DEV = ROOT / "requirements" / "dev.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
RELOCK = "run scripts/lock.sh and commit requirements/"


def pins(lock: Path) -> dict[str, Version]:
    return {canonicalize_name(name): Version(version)
            for name, version in PIN.findall(lock.read_text())}


def project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"runtime": data["dependencies"],
            "dev": data["dependencies"] + data["optional-dependencies"]["dev"]}


def mismatches(requirements: list[str], locked: dict[str, Version], lock: Path) -> list[str]:
    problems = []
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if requirement.marker is not None and not requirement.marker.evaluate(
                {"python_version": "3.11", "python_full_version": "3.11.7"}):
            continue
        if name not in locked:
            problems.append(f"pyproject.toml asks for {text!r}, {lock.name} does not pin it")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            problems.append(f"pyproject.toml asks for {text!r}, {lock.name} pins "
                            f"{locked[name]}")
    return problems


@pytest.mark.parametrize(("part", "lock"), [("runtime", RUNTIME), ("dev", DEV)])
def test_every_dependency_is_pinned_within_its_range(part: str, lock: Path) -> None:
    problems = mismatches(project()[part], pins(lock), lock)
    assert not problems, "; ".join(problems) + f" — {RELOCK}"


def test_the_image_runs_what_the_tests_ran() -> None:
    runtime, dev = pins(RUNTIME), pins(DEV)
    differing = sorted(f"{name} {version} (dev.txt: {dev.get(name)})"
                       for name, version in runtime.items() if dev.get(name) != version)
    assert not differing, f"runtime.txt and dev.txt disagree on {', '.join(differing)} — {RELOCK}"


def test_the_check_catches_a_dependency_added_without_relocking(tmp_path: Path) -> None:
    lock = tmp_path / "runtime.txt"
    lock.write_text("flask==3.1.3 \\\n    --hash=sha256:00\nrq==2.12.0 ; python_version >= '3'\n")
    problems = mismatches(["Flask>=3.0", "rq>=3.0,<4", "httpx>=0.27"], pins(lock), lock)
    assert problems == ["pyproject.toml asks for 'rq>=3.0,<4', runtime.txt pins 2.12.0",
                        "pyproject.toml asks for 'httpx>=0.27', runtime.txt does not pin it"]
