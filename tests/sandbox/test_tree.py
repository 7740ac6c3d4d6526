"""A repository state in a sandbox: the tree of one commit, its submodules filled when the
clone holds their recorded commits."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from sandbox.testrun import reference_harness
from sandbox.tree import tree_archive
from tests.gitrepo import GitRepo


def _files(archive: bytes) -> dict[str, bytes | None]:
    """Path -> content of a tar's files (None: a folder)."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                for m in tar.getmembers()}


def _with_suite(tmp_path: Path) -> tuple[GitRepo, GitRepo, str, str]:
    """A project whose tests read cases from a submodule (tomlkit keeps the toml-test suite
    so); the suite gained a case after the commit the project records."""
    suite = GitRepo.init(tmp_path / "suite", name="suite")
    recorded = suite.commit("Cases", {"cases/add.txt": "2 2 4\n"})
    project = GitRepo.init(tmp_path / "project")
    project.git("-c", "protocol.file.allow=always", "submodule", "add", "-q",
                str(suite.path), "tests/suite")
    state = project.commit("Add calc and its suite", {
        "calc.py": "def add(a, b):\n    return a + b\n",
        "tests/test_calc.py": "def test_cases():\n    pass\n"})
    suite.commit("Another case", {"cases/mul.txt": "2 3 6\n"})
    return project, suite, state, recorded


def test_a_submodule_the_clone_holds_is_filled_at_its_recorded_commit(tmp_path: Path) -> None:
    project, _, state, _ = _with_suite(tmp_path)
    files = _files(tree_archive(project.path, state))
    assert files["tests/suite/cases/add.txt"] == b"2 2 4\n"
    assert "tests/suite/cases/mul.txt" not in files  # the suite as recorded, not as it is now
    assert not any(name.startswith("tests/suite/.git") for name in files)  # no history
    harness = {f.path: f.content for f in reference_harness(project.path, state)}
    assert harness["tests/suite/cases/add.txt"] == b"2 2 4\n"  # restored for the hidden run


def test_a_submodule_the_clone_does_not_hold_is_an_empty_folder(tmp_path: Path) -> None:
    project, _, state, _ = _with_suite(tmp_path)
    clone = tmp_path / "clone"  # cloned without `git submodule update --init`
    subprocess.run(["git", "clone", "-q", str(project.path), str(clone)], check=True)
    files = _files(tree_archive(clone, state))
    assert files["tests/suite"] is None
    assert not any(name.startswith("tests/suite/") for name in files)
    assert files["calc.py"] == b"def add(a, b):\n    return a + b\n"
