"""The right Python per repository state: read from what the state declares, chosen among the
base images built on this engine, and used by the environment and its sandboxes."""

from __future__ import annotations

import uuid
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.settings import Settings, SettingsError
from sandbox.base import SandboxUnavailable
from sandbox.docker import DockerSandbox
from sandbox.environment import ensure_environment
from sandbox.factory import DEFAULT_IMAGE
from sandbox.interpreters import (
    Declared,
    base_images,
    choose_python,
    declared_python,
    declaring_files,
    image_for,
)
from sandbox.packages import BUILD_FLOOR_DIR, PackageAccess, dated
from sandbox.testrun import PASSED, HiddenTests, reference_harness, run_hidden
from tests.gitrepo import GitRepo

BUILT = {"3.9": "base:py3.9", "3.11": "base:latest", "3.13": "base:py3.13"}

OLD_SETUP = """from setuptools import setup
setup(name="old", python_requires=">=2.7, !=3.0.*, !=3.1.*",
      classifiers=["Programming Language :: Python :: 2.7",
                   "Programming Language :: Python :: 3.5",
                   "Programming Language :: Python :: 3.6"])
"""
WORKFLOW = """jobs:
  tests:
    strategy:
      matrix:
        include:
          - {name: Linux, python: '3.12', os: ubuntu-latest, tox: py312}
          - {name: '3.11', python: '3.11', os: ubuntu-latest, tox: py311}
        node-version: [3.4]
"""


def declared(tmp_path: Path, files: dict[str, str]) -> Declared:
    repo = GitRepo.init(tmp_path / uuid.uuid4().hex[:8])
    commit = repo.commit("State", {"README.md": "x\n", **files})
    return declared_python(declaring_files(repo.path, commit))


def test_what_a_state_declares_is_read_from_its_files(tmp_path: Path) -> None:
    old = declared(tmp_path, {"setup.py": OLD_SETUP, "tox.ini": "[tox]\nenvlist = py27,py3{5,6}\n",
                              ".travis.yml": 'python:\n  - "3.6"\n  - 3.5\n  - "2.7"\n'})
    assert old.requires == ">=2.7, !=3.0.*, !=3.1.*"
    assert old.supported == ("3.5", "3.6")
    assert any(source.startswith("tox.ini") for source in old.sources)
    modern = declared(tmp_path, {
        "pyproject.toml": '[project]\nname = "m"\nrequires-python = ">=3.10"\n',
        ".github/workflows/tests.yaml": WORKFLOW, "docs/conf.py": "python = '3.4'\n"})
    assert modern.requires == ">=3.10"
    assert modern.supported == ("3.11", "3.12")  # not node's 3.4, not a file outside CI
    poetry = declared(tmp_path, {"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.8"\n'})
    assert poetry.requires == ">=3.8,<4"


def test_the_choice_prefers_what_the_project_names(tmp_path: Path) -> None:
    def version(**kwargs: object) -> str:
        return choose_python(Declared(**kwargs), BUILT, "base:latest", "3.11").version  # type: ignore[arg-type]

    assert version(supported=("3.9", "3.10", "3.11", "3.12")) == "3.11"  # newest named
    assert version(supported=("3.5", "3.6")) == "3.9"  # old code: the oldest newer one
    assert version(supported=("3.9", "3.10")) == "3.9"
    assert version(supported=("3.10", "3.12")) == "3.11"  # the newest below what it names
    assert version(requires=">=3.12") == "3.13"
    assert version(requires=">=3.5") == "3.11"  # nothing named: the default
    assert version() == "3.11"
    assert version(requires="~=3.9.0", supported=("3.9", "3.10")) == "3.9"
    refused = choose_python(Declared(requires=">=3.14"), BUILT, "base:latest", "3.11")
    assert refused.image == "base:latest" and "allows none" in refused.reason
    reason = choose_python(Declared("", ("3.5", "3.6"), ("tox.ini 3.5, 3.6",)), BUILT,
                           "base:latest", "3.11").reason
    assert "tox.ini 3.5, 3.6" in reason and "after 3.6" in reason


def test_an_unknown_python_setting_is_refused() -> None:
    with pytest.raises(SettingsError, match="DAVINCI_PYTHON"):
        Settings.from_env({"DAVINCI_PYTHON": "three"})
    assert Settings.from_env({"DAVINCI_PYTHON": "3.9"}).python == "3.9"
    result = CliRunner().invoke(main, ["sandbox", "build-base", "--python", "2.7"])
    assert result.exit_code == 2 and "3.9, 3.11, 3.13" in result.output


def test_a_dated_install_leaves_out_indexes_without_upload_times() -> None:
    access = PackageAccess({"PIP_EXTRA_INDEX_URL": "file:///opt/mirror/simple https://corp/simple",
                            "PIP_FIND_LINKS": "/opt/wheels"})
    command = dated("pip install six", "2019-01-01T00:00:00Z", access)
    assert "PIP_UPLOADED_PRIOR_TO=2019-01-01T00:00:00Z" in command
    assert "PIP_EXTRA_INDEX_URL=https://corp/simple " in command
    # a local wheel folder is left out; the build back-end floor (never dated) is all there is
    assert f"PIP_FIND_LINKS={BUILD_FLOOR_DIR} " in command and "/opt/wheels" not in command
    assert command.endswith("&& pip install six))")  # then current releases
    local = PackageAccess({"PIP_INDEX_URL": "file:///opt/mirror/simple"})
    assert dated("pip install six", "2019-01-01T00:00:00Z", local) == "pip install six"


@pytest.fixture
def python39(engine: docker.DockerClient) -> None:
    """Skips unless the engine holds the Python 3.9 base image next to the default."""
    if "3.9" not in base_images(engine, DEFAULT_IMAGE):
        pytest.skip(f"no Python 3.9 base image ({image_for(DEFAULT_IMAGE, '3.9')}); "
                    "scripts/docker-up.sh builds it, as CI does")


@pytest.mark.usefixtures("python39")
def test_old_code_runs_on_the_python_it_was_written_for(engine: docker.DockerClient,
                                                        tmp_path: Path) -> None:
    """A state declaring 3.5/3.6 gets the 3.9 image: code using `collections.Mapping` (gone in
    3.10) imports there, and its tests run hidden on that image's pytest. Asking for a
    version by setting overrides the choice."""
    repo = GitRepo.init(tmp_path / "old", name="old")
    commit = repo.commit("Old", {
        "tox.ini": "[tox]\nenvlist = py27,py35,py36\n", ".travis.yml": "python:\n  - 3.6\n",
        "old.py": "from collections import Mapping\n",
        "tests/test_old.py": "import old\n\ndef test_mapping():\n    assert old.Mapping\n"})
    found = ensure_environment(repo.path, commit, None, DEFAULT_IMAGE, engine=engine)
    assert found.install is None  # nothing to install: the chosen base image itself
    assert found.python is not None and found.python.version == "3.9", found.python
    assert found.image == image_for(DEFAULT_IMAGE, "3.9")
    assert "tox.ini 3.5, 3.6" in found.python.reason
    with DockerSandbox(repo.path, commit, found.image, engine=engine) as box:
        ran = box.exec("python3 -c 'import sys, old; print(sys.version_info[:2])'")
        assert ran.ok and ran.stdout.strip() == "(3, 9)", ran.stderr
        run = run_hidden(box, HiddenTests(("tests/test_old.py",), (),
                                          reference_harness(repo.path, commit), timeout=120.0))
        assert run.outcomes == {"tests/test_old.py::test_mapping": PASSED}, run.log
    forced = ensure_environment(repo.path, commit, None, DEFAULT_IMAGE, engine=engine,
                                python="3.11")
    assert forced.python is not None and forced.image == DEFAULT_IMAGE
    with pytest.raises(SandboxUnavailable, match="build-base --python 3.12"):
        ensure_environment(repo.path, commit, None, DEFAULT_IMAGE, engine=engine, python="3.12")


@pytest.mark.usefixtures("python39")
def test_the_env_command_says_which_python_and_why(engine: docker.DockerClient,
                                                   tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "said", name="said")
    repo.commit("Modern", {"pyproject.toml": '[project]\nname = "m"\nrequires-python = ">=3.12"\n'
                           'version = "1"\n[build-system]\nrequires = ["setuptools"]\n'
                           'build-backend = "setuptools.build_meta"\n'})
    if "3.13" not in base_images(engine, DEFAULT_IMAGE):
        pytest.skip("no Python 3.13 base image; scripts/docker-up.sh builds it, as CI does")
    result = CliRunner().invoke(main, ["sandbox", "env", str(repo.path), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = __import__("json").loads(result.output.strip().splitlines()[-1])
    assert document["python"] == "3.13" and "requires-python >=3.12" in document["python_reason"]
