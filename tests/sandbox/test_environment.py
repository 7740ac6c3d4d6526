"""Environment images on a real Docker engine: built once per dependency state, with network
during the build only, and sandboxes from them as locked down as from the base image."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from bot.cli import main
from sandbox.base import ExecResult
from sandbox.docker import DockerSandbox
from sandbox.environment import (
    BROKEN_PLUGINS,
    BUILD_LOG,
    DECLARED,
    DEVELOP,
    MODERN_PYTEST,
    OLD_METADATA,
    OLD_PY_LIB,
    PYTEST_PLUGINS,
    Environment,
    EnvironmentBuildFailed,
    build_log,
    builder_name,
    dependency_files,
    detect_install,
    ensure_environment,
    environment_key,
    image_name,
    one_by_one,
    setup_requires,
)
from sandbox.factory import DEFAULT_IMAGE, open_sandbox
from sandbox.interpreters import base_images, image_for
from sandbox.local import LocalSandbox
from sandbox.packages import CACHE_VOLUME, PackageAccess, choice_file
from sandbox.testrun import PASSED, run_tests
from tests.gitrepo import GitRepo

# Installs a module into the image's site-packages without any network, and notes which
# network interfaces the build saw.
INSTALL = ("python3 -c \"import site, pathlib; pathlib.Path(site.getsitepackages()[0], "
           "'envprobe.py').write_text('VALUE = 41')\" && ls /sys/class/net > /opt/build-net")


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    name = f"envtest-{uuid.uuid4().hex[:8]}"  # a fresh image name per test
    git = GitRepo.init(tmp_path / name, name=name)
    git.commit("Start", {".github/davinci.yml": f"install: >-\n  {INSTALL}\n",
                         "requirements.txt": "", "README.md": "# probe\n",
                         "tests/test_probe.py": "import os\n\ndef test_runner_env():\n"
                         "    assert os.environ.get('PROBE_RUNNER') == 'yes'\n"})
    return git


def test_detected_install_commands() -> None:
    pip = "python3 -m pip install --no-input --disable-pip-version-check"
    runner = f"{OLD_METADATA} && {MODERN_PYTEST} && {OLD_PY_LIB} && {PYTEST_PLUGINS}"
    assert detect_install({}) is None
    def req(name: str) -> str:  # a file, then the file without its URL and local lines
        without = "/tmp/davinci-requirements-without-urls.txt"
        return (f"({pip} -r {name} || (grep -v -E -e '://' -e "
                f"'^[[:space:]]*((-e|--editable)[[:space:]]*)?(\\.|/|file:)' {name} > "
                f"{without}; {pip} -r {without}) || {one_by_one(without, name)})")

    assert detect_install({"requirements.txt": b"pytest\n", "requirements-dev.txt": b"",
                           "requirements-docs.txt": b"sphinx\n",
                           "test-requirements.txt": b"freezegun\n"}) == (
        f"{req('requirements-dev.txt')} && {req('requirements.txt')} && "
        f"{req('test-requirements.txt')} && {runner}")
    pyproject = (b'[project]\nname = "x"\ndependencies = ["attrs>=23", "click"]\n'
                 b'[project.optional-dependencies]\ntest = ["pytest-timeout", "click"]\n'
                 b'[dependency-groups]\ntests = ["freezegun", {include-group = "x"}]\n'
                 b'[tool.pytest.ini_options]\naddopts = "--cov=x"\n')
    def packages(*names: str) -> str:  # together, then one by one
        listed = " ".join(shlex.quote(name) for name in names)
        return (f"({pip} {listed} || (printf '%s\\n' {listed} > {DECLARED} && "
                f"{one_by_one(DECLARED, 'the declared packages', folder='.')}))")

    assert detect_install({"pyproject.toml": pyproject}) == (
        packages("attrs>=23", "click", "pytest-timeout", "freezegun", "pytest-cov", "pytest")
        + " && "
        f"({pip} -e . || (({pip} .) && {DEVELOP}) || "
        f"((env -u PIP_UPLOADED_PRIOR_TO {pip} .) && {DEVELOP}) || (({setup_requires('')}) && "
        f"{DEVELOP}) || {pip} --no-deps -e . || "
        f"{pip} --no-deps --no-build-isolation -e . || "
        "echo 'the project itself could not be installed; tests import it from the work tree')"
        " && "
        + runner)
    # PDM's development groups (before dependency groups were standard) and Poetry's (names
    # only: `^7.0` is no pip constraint).
    pdm = (b'[project]\nname = "x"\ndependencies = ["attrs"]\n'
           b'[tool.pdm.dev-dependencies]\ntest = ["hypothesis>=6.79", "-e file:///${PROJECT_ROOT}"]\n'
           b'lint = ["ruff"]\n')
    assert detect_install({"pyproject.toml": pdm}).startswith(
        packages("attrs", "hypothesis>=6.79", "pytest") + " && ")
    poetry = (b'[tool.poetry]\nname = "x"\n[tool.poetry.dependencies]\npython = "^3.8"\n'
              b'[tool.poetry.group.test.dependencies]\npytest = "^7.0"\nfreezegun = "*"\n'
              b'[tool.poetry.group.docs.dependencies]\nsphinx = "*"\n'
              b'[tool.poetry.dev-dependencies]\nmypy = "^1"\n'
              b'[build-system]\nrequires = ["poetry-core"]\n')
    assert detect_install({"pyproject.toml": poetry}).startswith(
        f"{packages('mypy', 'pytest', 'freezegun')} && ")
    flit = (b'[build-system]\nrequires = ["flit_core >=2,<3"]\n[tool.flit.metadata]\n'
            b'module = "typer"\nrequires = ["click >= 7.1.1, <7.2.0"]\n'
            b'[tool.flit.metadata.requires-extra]\ntest = ["shellingham", "pytest >=4.4.0,< 5.4"]\n'
            b'doc = ["mkdocs"]\n')
    assert detect_install({"pyproject.toml": flit}).startswith(
        packages("click >= 7.1.1, <7.2.0", "shellingham", "pytest >=4.4.0,< 5.4") + " && ")
    assert detect_install({"pyproject.toml": b"[tool.black]\n"}) is None
    assert detect_install({"pyproject.toml": b"not toml ["}) is None
    assert detect_install({"setup.py": b"from setuptools import setup\nsetup()\n"}).startswith(
        f"{packages('pytest')} && ({pip} -e . || (({pip} .) && {DEVELOP}) || "
        f"((env -u PIP_UPLOADED_PRIOR_TO {pip} .) && {DEVELOP}) || (({setup_requires('')})")
    tox = b"[testenv]\ndeps =\n    -r requirements/tests.txt\n    py37: mock\n    hypothesis\n"
    folder = {"tox.ini": tox, "requirements/tests.txt": b"pytest==8\n",
              "requirements/tests.in": b"pytest\n", "requirements/docs.txt": b"sphinx\n",
              "requirements/base.txt": b"attrs\n"}
    assert detect_install(folder) == (f"{req('requirements/tests.txt')} && "
                                      f"{packages('hypothesis')} && {runner}")
    # The extras tox installs for the tests, else the test extras setup.py defines in a dict.
    extras = {"setup.py": b'EXTRAS = {"tests": ["simplejson"], "lint": ["flake8"]}\n',
              "tox.ini": b"[testenv]\nextras = tests\n[testenv:docs]\nextras = docs\n"}
    assert f"({pip} -e '.[tests]' || {pip} -e . ||" in detect_install(extras)
    extras.pop("tox.ini")
    assert "-e '.[tests]' ||" in detect_install(extras)
    # A requirement file that installs the project with extras names them (the line itself is
    # left to the project step).
    extras["requirements.txt"] = b"-e .[standard]\npytest\n"
    assert f"({pip} -e '.[standard,tests]' || {pip} -e . ||" in detect_install(extras)


def test_the_key_follows_dependencies_not_other_files() -> None:
    base = environment_key("sha256:base", "pip install -r requirements.txt",
                           {"requirements.txt": b"attrs\n"})
    assert base == environment_key("sha256:base", "pip install -r requirements.txt",
                                   {"requirements.txt": b"attrs\n"})
    assert base != environment_key("sha256:base", "pip install -r requirements.txt",
                                   {"requirements.txt": b"attrs==23.1\n"})
    assert base != environment_key("sha256:other", "pip install -r requirements.txt",
                                   {"requirements.txt": b"attrs\n"})
    assert base != environment_key("sha256:base", "pip install -r requirements.txt -U",
                                   {"requirements.txt": b"attrs\n"})


def test_requirement_files_tox_installs_for_the_tests_are_dependencies(tmp_path: Path) -> None:
    """tablib's 2019 tox.ini installs `-rtests/requirements.txt` (under a `tests:` factor),
    where MarkupPy is, and no other file names it: that file is a dependency and installed;
    one for another factor (docs) is not."""
    git = GitRepo.init(tmp_path / "toxreq")
    tox = ("[testenv]\ndeps =\n    tests: -rtests/requirements.txt\n"
           "    docs: -rdocs/requirements.txt\n    -r{toxinidir}/ci/pins.txt\nextras = pandas\n")
    commit = git.commit("Start", {"tox.ini": tox, "tests/requirements.txt": "MarkupPy\n",
                                  "docs/requirements.txt": "sphinx\n", "ci/pins.txt": "six\n",
                                  "setup.py": "from setuptools import setup\nsetup()\n"})
    files = dependency_files(git.path, commit)
    assert sorted(files) == ["ci/pins.txt", "setup.py", "tests/requirements.txt", "tox.ini"]
    detected = detect_install(files) or ""
    assert detected.startswith("(python3 -m pip install --no-input --disable-pip-version-check"
                               " -r tests/requirements.txt || "), detected[:200]
    assert "-r ci/pins.txt" in detected and "docs/requirements.txt" not in detected


def test_files_the_install_command_names_are_dependencies(tmp_path: Path) -> None:
    git = GitRepo.init(tmp_path / "named")
    install = ("pip install -r ci/test-pins.txt --constraint=constraints.txt "
               "-rrequirements/docs.txt -e . && pytest --version")
    first = git.commit("Start", {"ci/test-pins.txt": "attrs\n", "constraints.txt": "attrs<24\n",
                                 "requirements/docs.txt": "sphinx\n", "src/app.py": "A = 1\n",
                                 "requirements/base.in": "attrs\n", "setup.py": "",
                                 "requirements/README.md": "notes\n"})
    files = dependency_files(git.path, first, install)
    assert sorted(files) == ["ci/test-pins.txt", "constraints.txt", "requirements/base.in",
                             "requirements/docs.txt", "setup.py"]
    key = environment_key("sha256:base", install, files)

    code = git.commit("Code", {"src/app.py": "A = 2\n"})
    assert environment_key("sha256:base", install,
                           dependency_files(git.path, code, install)) == key
    pins = git.commit("Pins", {"ci/test-pins.txt": "attrs==23.2\n"})
    assert environment_key("sha256:base", install,
                           dependency_files(git.path, pins, install)) != key
    # Without a configured command, the docs pins are not installed; the project is.
    detected = detect_install(dependency_files(git.path, pins)) or ""
    assert "requirements/docs.txt" not in detected and "-e ." in detected


def test_an_environment_is_built_once_per_dependency_state(
        engine: docker.DockerClient, repo: GitRepo) -> None:
    first = ensure_environment(repo.path, repo.head(), INSTALL, DEFAULT_IMAGE)
    assert first.built and first.image.startswith("davinci-env-envtest-")
    image_id = engine.images.get(first.image).id
    again = ensure_environment(repo.path, repo.head(), INSTALL, DEFAULT_IMAGE)
    assert not again.built and again.image == first.image
    assert engine.images.get(again.image).id == image_id

    docs = repo.commit("Docs", {"README.md": "# probe, documented\n"})
    same = ensure_environment(repo.path, docs, INSTALL, DEFAULT_IMAGE)
    assert not same.built and same.key == first.key

    deps = repo.commit("Pin", {"requirements.txt": "# nothing to pin yet\n"})
    fresh = ensure_environment(repo.path, deps, INSTALL, DEFAULT_IMAGE)
    assert fresh.built and fresh.key != first.key and fresh.image != first.image


def test_sandboxes_from_an_environment_have_its_packages_but_no_network(
        engine: docker.DockerClient, repo: GitRepo) -> None:
    with open_sandbox(repo.path, repo.head(), "docker", DEFAULT_IMAGE, environment=True,
                      install=INSTALL) as box:
        assert box.exec("python3 -c 'import envprobe; print(envprobe.VALUE)'").stdout == "41\n"
        built_with = box.exec("cat /opt/build-net").stdout.split()
        assert "lo" in built_with and len(built_with) > 1, "the build had a network"
        assert box.exec("ls /sys/class/net").stdout.split() == ["lo"], "the sandbox has none"
        assert box.exec("id -u").stdout.strip() == "1000"
        assert box.exec("touch /usr/probe").exit_code != 0, "the root stays read-only"
        assert box.read_file("README.md") == "# probe\n"
        outcome = run_tests(box, ("tests/test_probe.py",), 120,
                            runner="env PROBE_RUNNER=yes python3 -m pytest")
        assert outcome.outcomes == {"tests/test_probe.py::test_runner_env": PASSED}
        default = run_tests(box, ("tests/test_probe.py",), 120)
        assert default.outcomes == {"tests/test_probe.py::test_runner_env": "failed"}


def test_a_failing_install_is_a_clear_error_and_leaves_nothing_behind(
        engine: docker.DockerClient, repo: GitRepo) -> None:
    command = "echo resolving dependencies && echo 'No matching distribution' >&2 && exit 3"
    with pytest.raises(EnvironmentBuildFailed, match="exited with 3") as failure:
        ensure_environment(repo.path, repo.head(), command, DEFAULT_IMAGE)
    assert "No matching distribution" in str(failure.value)
    assert engine.containers.list(all=True, filters={"label": "davinci.build"}) == []
    assert not any(repo.name in tag for image in engine.images.list()
                   for tag in image.tags)


def test_a_failed_build_keeps_its_whole_output_where_its_error_says(
        engine: docker.DockerClient, repo: GitRepo) -> None:
    """The error shows the last 30 lines; the first of 40 is in the file it names."""
    command = "for i in $(seq 1 40); do echo build line $i; done && exit 4"
    with pytest.raises(EnvironmentBuildFailed, match="exited with 4") as failure:
        ensure_environment(repo.path, repo.head(), command, DEFAULT_IMAGE)
    message = str(failure.value)
    assert "build line 40" in message and "build line 1\n" not in message
    kept = Path(re.search(r"whole output: ([^)]+)\)", message).group(1))  # type: ignore[union-attr]
    log = kept.read_text()
    assert "build line 1\n" in log and "build line 40" in log and "(exit code 4)" in log
    kept.unlink()


def test_an_environment_keeps_its_build_log_for_its_user_not_its_agent(
        engine: docker.DockerClient, repo: GitRepo) -> None:
    """`davinci sandbox env --log` prints what the build printed; inside a sandbox from the
    image the log is unreadable (its commands may hold the index settings)."""
    command = f"echo installing the probe && {INSTALL}"
    runner = CliRunner()
    repo.commit("Install", {".github/davinci.yml": f"install: >-\n  {command}\n"})
    shown = runner.invoke(main, ["sandbox", "env", str(repo.path), "--log"])
    assert shown.exit_code == 0, shown.output
    assert "installing the probe" in shown.stdout and "(exit code 0)" in shown.stdout
    image = json.loads(runner.invoke(main, ["sandbox", "env", str(repo.path), "--json"]
                                     ).stdout)["image"]
    with DockerSandbox(repo.path, repo.head(), image, engine=engine) as box:
        read = box.exec(f"cat {BUILD_LOG}")
        assert read.exit_code != 0 and "installing the probe" not in read.stdout


def test_nothing_to_install_means_the_base_image(engine: docker.DockerClient,
                                                 tmp_path: Path) -> None:
    bare = GitRepo.init(tmp_path / "bare")
    bare.commit("Start", {"README.md": "# nothing\n"})
    found = ensure_environment(bare.path, bare.head(), None, DEFAULT_IMAGE)
    assert found.image == DEFAULT_IMAGE and found.install is None and not found.built


def test_the_env_command_builds_then_reuses(engine: docker.DockerClient, repo: GitRepo) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["sandbox", "env", str(repo.path), "--json"])
    assert first.exit_code == 0, first.output
    built = json.loads(first.stdout)
    assert built["built"] is True and built["install"].startswith("python3 -c")
    second = runner.invoke(main, ["sandbox", "env", str(repo.path)])
    assert second.exit_code == 0 and "(reused)" in second.stdout


def test_the_local_backend_says_it_installs_nothing(tmp_path: Path) -> None:
    bare = GitRepo.init(tmp_path / "bare")
    bare.commit("Start", {"README.md": "# nothing\n"})
    with pytest.warns(UserWarning, match="does not run the install command"), \
            open_sandbox(bare.path, bare.head(), "local", environment=True,
                         install="pip install attrs") as box:
        assert isinstance(box, LocalSandbox)


@contextlib.contextmanager
def held_except(engine: docker.DockerClient, image: str) -> Iterator[list[str]]:
    """Every environment image on the engine but ``image`` given one more tag while the block
    runs, so a gc of all environments leaves the images of the machine's other work alone:
    the engine refuses to remove, unforced, an image that more than one tag names (as one
    a container uses). Yields their tags."""
    mine = engine.images.get(image).id
    extra, held = f"davinci-gc-test-hold-{uuid.uuid4().hex[:8]}", []
    try:
        for number, other in enumerate(engine.images.list(filters={"label": "davinci.env=1"})):
            if other.id != mine:
                with contextlib.suppress(docker.errors.NotFound):  # removed meanwhile
                    other.tag(extra, str(number))
                    held.extend(other.tags)
        yield held
    finally:
        for tag in engine.images.list(name=extra):
            for name in tag.tags:
                if name.startswith(extra + ":"):
                    with contextlib.suppress(docker.errors.NotFound):
                        engine.images.remove(name)


def test_gc_removes_old_environment_images_only(engine: docker.DockerClient,
                                                repo: GitRepo) -> None:
    built = ensure_environment(repo.path, repo.head(), INSTALL, DEFAULT_IMAGE)
    runner = CliRunner()
    with held_except(engine, built.image) as held:
        kept = runner.invoke(main, ["sandbox", "gc", "--environments-older-than", "1"])
        assert kept.exit_code == 0 and "removed 0 environment image(s)" in kept.stdout
        engine.images.get(built.image)
        gone = runner.invoke(main, ["sandbox", "gc", "--environments-older-than", "0"])
    assert gone.exit_code == 0 and built.image in gone.stdout
    assert not [tag for tag in held if tag in gone.stdout], "a held image stays"
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(built.image)


def test_a_build_network_of_none_keeps_the_install_offline(engine: docker.DockerClient,
                                                           repo: GitRepo) -> None:
    built = ensure_environment(repo.path, repo.head(), INSTALL, DEFAULT_IMAGE, network="none")
    assert built.built
    with open_sandbox(repo.path, repo.head(), "docker", built.image) as box:
        assert box.exec("cat /opt/build-net").stdout.split() == ["lo"]
        assert box.exec("python3 -c 'import envprobe'").exit_code == 0


def test_two_workers_needing_one_environment_build_it_once(engine: docker.DockerClient,
                                                          repo: GitRepo) -> None:
    slow = f"sleep 3 && {INSTALL}"
    results: list[Environment] = []
    workers = [threading.Thread(target=lambda: results.append(
        ensure_environment(repo.path, repo.head(), slow, DEFAULT_IMAGE))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert sorted(r.built for r in results) == [False, True], "one built, one waited"
    assert results[0].image == results[1].image
    assert engine.containers.list(all=True, filters={"label": "davinci.build"}) == []


def test_a_build_left_behind_by_a_dead_worker_does_not_block_the_next(
        engine: docker.DockerClient, repo: GitRepo) -> None:
    files = dependency_files(repo.path, repo.head(), INSTALL)
    key = environment_key(engine.images.get(DEFAULT_IMAGE).id, INSTALL, files)
    stale = engine.containers.create(
        DEFAULT_IMAGE, command=["sleep", "infinity"],
        name=builder_name(image_name(repo.path, key)),
        labels={"davinci.sandbox": "1", "davinci.created": "0", "davinci.build": "x"})
    try:
        built = ensure_environment(repo.path, repo.head(), INSTALL, DEFAULT_IMAGE, timeout=5)
        assert built.built
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(stale.id)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            stale.remove(force=True)


def test_a_real_environment_builds_from_the_index_this_machine_uses(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """No hand set-up: the host's pip settings, CA bundle and a network that reaches the index
    are found and given to the build; the sandbox from the image still has no network. The
    first state's dependencies are installed too (a chain's early tests may need them). A
    requirement that cannot install (an optional package whose extension does not build)
    costs only itself, in either state."""
    name = f"realenv-{uuid.uuid4().hex[:8]}"
    git = GitRepo.init(tmp_path / name, name=name)
    first = git.commit("Start", {"requirements.txt": "six==1.16.0\ndavinci-no-such-package\n",
                                 "README.md": "# six\n"})
    last = git.commit("Later", {"requirements.txt": (
        "iniconfig\n"
        "git+https://vcs.invalid/tool.git#egg=tool\n"  # a host pip cannot reach
        "davinci-no-such-package==0.0.1  # optional, and not to be had\n")})
    built = ensure_environment(git.path, last, None, DEFAULT_IMAGE, access=index_access,
                               first=first)
    assert built.built and "requirements.txt" in (built.install or "")
    with DockerSandbox(git.path, last, built.image, engine=engine) as box:
        found = box.exec("python3 -c 'import six, iniconfig, pytest; print(six.__version__)'")
        assert found.stdout.strip() == "1.16.0", found.stderr
        assert box.exec("ls /sys/class/net").stdout.split() == ["lo"]
        # The build's package settings stay with the build: tests that read pip's
        # configuration (pip-tools passes it on) see none of this machine's.
        names = {line.split("=", 1)[0] for line in box.exec("env").stdout.splitlines()}
        assert not names & {*index_access.environment, "PIP_BREAK_SYSTEM_PACKAGES"}
        assert box.exec("echo $HOME").stdout.strip() == "/home/agent"
    assert engine.volumes.get(CACHE_VOLUME)  # downloads kept for the next build
    log = build_log(built.image)
    assert "left out of requirements.txt: davinci-no-such-package==0.0.1" in log
    assert "left out of requirements.txt: davinci-no-such-package\n" in log


def test_a_pin_of_a_package_the_distribution_installed(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """Debian trixie installs `wheel` with no RECORD, which pip cannot uninstall: a
    requirement file pinning another version of it (and pip itself, as pip-compile's
    `--allow-unsafe` does) still installs, and pip still runs (pallets' pinned
    `requirements/dev.txt` did not build)."""
    if "3.13" not in base_images(engine, DEFAULT_IMAGE):
        pytest.skip(f"no Python 3.13 base image ({image_for(DEFAULT_IMAGE, '3.13')}); "
                    "scripts/docker-up.sh builds it, as CI does")
    found = engine.containers.run(image_for(DEFAULT_IMAGE, "3.13"), ["python3", "-I", "-c", (
        "import importlib.metadata as m; d = m.distribution('wheel'); "
        "print(d.version, d.read_text('RECORD') is None)")], remove=True, network_mode="none")
    version, unrecorded = found.decode().split()
    assert unrecorded == "True", "the base image's wheel has a RECORD: this tests nothing"
    pin = "0.41.3" if version != "0.41.3" else "0.41.2"  # released before the commit
    name = f"debwheel-{uuid.uuid4().hex[:8]}"
    git = GitRepo.init(tmp_path / name, name=name)
    commit = git.commit("Pin the build tools", {
        "requirements/dev.txt": f"wheel=={pin}\npip==24.3.1\n",
        "tox.ini": "[testenv]\ndeps = -r requirements/dev.txt\n"})
    built = ensure_environment(git.path, commit, None, DEFAULT_IMAGE, access=index_access,
                               python="3.13")
    with DockerSandbox(git.path, commit, built.image, engine=engine) as box:
        ran = box.exec("python3 -c 'import wheel; print(wheel.__version__)' && "
                       "python3 -m pip --version")
    assert ran.ok and ran.stdout.split()[:2] == [pin, "pip"], ran.stdout + ran.stderr


def test_the_build_network_answer_is_shared_by_processes(engine: docker.DockerClient) -> None:
    """A probe's answer serves other processes for a while: a fresh process reads it."""
    access = PackageAccess(indexes=("https://index.invalid/simple",))
    key = (engine.api.base_url, DEFAULT_IMAGE, json.dumps(access.environment, sort_keys=True))
    path = choice_file(key)
    path.write_text(json.dumps({"network": "remembered-net", "reachable": True,
                                "detail": "from another process"}))
    try:
        found = subprocess.run(
            [sys.executable, "-c", "import docker, json, sys\n"
             "from sandbox.packages import PackageAccess, build_network\n"
             "access = PackageAccess(indexes=('https://index.invalid/simple',))\n"
             f"choice = build_network(docker.from_env(), {DEFAULT_IMAGE!r}, access)\n"
             "print(choice.network)"], capture_output=True, text=True, check=True)
        assert found.stdout.strip() == "remembered-net"
        os.utime(path, (0, 0))  # too old to trust: probed again (no index answers there)
        again = subprocess.run(found.args, capture_output=True, text=True, check=True)
        assert again.stdout.strip() == "bridge"
        assert os.path.getmtime(path) == 0, "an index that answers nowhere is not remembered"
    finally:
        path.unlink(missing_ok=True)


def _dated_state(tmp_path: Path, clock: int, files: dict[str, str], access: PackageAccess,
                 python: str) -> tuple[GitRepo, str, Environment, str]:
    """A repository whose one state, committed at ``clock``, has ``files``; its environment
    built with packages as of that state, and the build's output."""
    name = f"dated-{uuid.uuid4().hex[:8]}"
    git = GitRepo.init(tmp_path / name, name=name)
    git.clock = clock
    commit = git.commit("Old", files)
    output: list[str] = []
    built = ensure_environment(git.path, commit, None, DEFAULT_IMAGE, access=access,
                               python=python, on_output=output.append)
    return git, commit, built, "".join(output)


def _python_says(engine: docker.DockerClient, git: GitRepo, commit: str, image: str,
                 code: str) -> ExecResult:
    """What ``code`` prints in a sandbox of ``commit`` from ``image``."""
    with DockerSandbox(git.path, commit, image, engine=engine) as box:
        return box.exec(f"python3 -c {shlex.quote(code)}")


def test_packages_come_as_they_were_when_the_state_was_committed(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """A state from December 2018 gets six 1.12.0 (the last release before 2019), not today's; a
    state older than any release of a package gets its current release and says so."""
    git, commit, built, log = _dated_state(tmp_path, 1_545_000_000,  # 2018-12-16
                                           {"requirements.txt": "six\n"}, index_access, "3.11")
    found = _python_says(engine, git, commit, built.image, "import six; print(six.__version__)")
    assert found.stdout.strip() == "1.12.0", log[-3000:]
    git, ancient, built, log = _dated_state(tmp_path, 946_684_800,  # 2000-01-01: no six yet
                                            {"requirements.txt": "six\n"}, index_access, "3.11")
    assert "current releases for requirements.txt: six" in log
    found = _python_says(engine, git, ancient, built.image, "import six; print(six.__version__)")
    assert found.ok and found.stdout.strip() != "1.12.0"


@pytest.mark.parametrize("files, source", [
    ({"requirements.txt": "idna\ntyped-ast\n"}, "requirements.txt"),
    ({"pyproject.toml": '[project]\nname = "old"\nversion = "0"\n'
                        'dependencies = ["idna", "typed-ast"]\n'}, "the declared packages"),
], ids=["requirement file", "declared"])
def test_a_requirement_with_no_release_of_its_day_that_installs_costs_only_itself(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess,
        files: dict[str, str], source: str) -> None:
    """A December 2018 state wants `typed-ast` (for its linters): the release of its day does
    not build on Python 3.9. That line gets today's release; the rest keep their day's: idna
    2.8. Before, the one line failed the dated install and every package came as of
    today (starlette's 2019 states got today's requests and urllib3). Packages declared in
    `pyproject.toml` went in one pip call, and failed the same way as a whole."""
    git, commit, built, log = _dated_state(tmp_path, 1_545_000_000,  # 2018-12-16
                                           files, index_access, "3.9")
    assert f"current releases for {source}: typed-ast" in log, log[-3000:]
    assert "did not all install" not in log, log[-3000:]
    found = _python_says(engine, git, commit, built.image,
                         "import idna, typed_ast; print(idna.__version__)")
    assert found.stdout.strip() == "2.8", found.stderr + log[-3000:]


def test_a_project_pip_refuses_still_gets_what_its_setup_py_requires(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """uvicorn's 2021 `setup.py` asks for `click>=7.*`: current pip refuses the metadata, so
    neither an install nor a copy of the project worked, and the state got none of what it
    requires (every test failed to import `asgiref`). Its requirements are read from
    `egg_info`, made valid, and installed, with the extra a requirement file names."""
    probe_with_pins(engine, tmp_path, index_access, "legacy", "-e .[standard]\n", files={
        "setup.py": "from setuptools import setup\n\nsetup(name='legacy', version='1.0', "
                    "packages=['legacy'], install_requires=['six>=1.*'],\n"
                    "      extras_require={'standard': ['idna>=2.*']})\n",
        "legacy/__init__.py": "import six\n",
        "tests/test_probe.py": "import idna\nimport legacy\n\n\ndef test_probe():\n"
                               "    assert legacy.six.PY3\n"})


def test_an_old_state_builds_the_source_distributions_of_its_day(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """A June 2018 state gets MarkupSafe 1.0, a source distribution without a build system.
    pip builds those with `setuptools>=40.8.0`, released in 2019 and so dated away: the whole
    dated install failed, and the state got today's MarkupSafe, which no longer has the
    `soft_unicode` that code of the time imports (pallets/jinja in 2017)."""
    # Without pip's cache: a wheel an earlier build made of MarkupSafe 1.0 would hide the build.
    uncached = PackageAccess({**index_access.environment, "PIP_NO_CACHE_DIR": "1"},
                             index_access.mounts, index_access.indexes)
    git, commit, built, log = _dated_state(tmp_path, 1_528_000_000,  # 2018-06-03
                                           {"requirements.txt": "MarkupSafe\n"}, uncached, "3.9")
    assert "did not all install" not in log, log[-3000:]
    found = _python_says(engine, git, commit, built.image,
                         "from markupsafe import __version__, soft_unicode; print(__version__)")
    assert found.stdout.strip() == "1.0", found.stderr + log[-3000:]


def test_pytest_starts_beside_the_py_library_of_an_old_state(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """A 2020 state pins py 1.9 (pallets/jinja's test requirements did), which does not
    import on Python 3.11; pytest 7 imports it when it is there, so pytest did not start."""
    name = f"oldpy-{uuid.uuid4().hex[:8]}"
    git = GitRepo.init(tmp_path / name, name=name)
    git.clock = 1_604_300_000  # 2020-11-02
    commit = git.commit("Old", {"requirements.txt": "py==1.9.0\n",
                                "test_ok.py": "def test_ok():\n    assert True\n"})
    output: list[str] = []
    built = ensure_environment(git.path, commit, None, DEFAULT_IMAGE, access=index_access,
                               python="3.11", on_output=output.append)
    with DockerSandbox(git.path, commit, built.image, engine=engine) as box:
        found = box.exec("python3 -m pytest -q test_ok.py")
        assert found.ok and "1 passed" in found.stdout, found.stdout + found.stderr


def test_a_project_without_editable_installs_still_runs_from_the_work_tree(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """A build back-end without PEP 660 (setuptools before 64) cannot be installed editable
    by a current pip: the project's dependencies are installed from a copy, the copy is
    removed, and the work tree goes on the path, so tests import the code the agent edits."""
    name = f"legacy-{uuid.uuid4().hex[:8]}"
    git = GitRepo.init(tmp_path / name, name=name)
    commit = git.commit("Legacy", {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools<64", "wheel"]\n'
                          'build-backend = "setuptools.build_meta"\n',
        "setup.py": "from setuptools import setup\nsetup(name='legacykit', version='1.0', "
                    "packages=['legacykit'], install_requires=['six'])\n",
        "legacykit/__init__.py": "import six\nVALUE = 1\n"})
    output: list[str] = []
    built = ensure_environment(git.path, commit, None, DEFAULT_IMAGE, access=index_access,
                               python="3.11", on_output=output.append)
    assert "build_editable" in "".join(output)  # the editable install was refused
    with DockerSandbox(git.path, commit, built.image, engine=engine) as box:
        box.write_file("legacykit/__init__.py", "import six\nVALUE = 2\n")
        found = box.exec("cd /tmp && python3 -c 'import legacykit; print(legacykit.VALUE, "
                         "legacykit.__file__)'")
        assert found.stdout.split() == ["2", "/work/repo/legacykit/__init__.py"], found.stderr
        listed = box.exec("python3 -m pip list 2>/dev/null").stdout.lower()
        assert "six" in listed and "legacykit" not in listed


def test_an_old_state_gets_its_months_pip_and_packages_with_an_editable_requirement(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """A June 2019 state whose requirement file installs the project editable (`-e .`, which
    2019's setuptools cannot do under a current pip) still gets June 2019's packages, and pip
    itself as it was then (code that imports pip's internals, as pip-tools does, breaks on a
    newer one); the project runs from the work tree."""
    name = f"oldpip-{uuid.uuid4().hex[:8]}"
    git = GitRepo.init(tmp_path / name, name=name)
    git.clock = 1_560_000_000  # 2019-06-08
    commit = git.commit("Old", {
        "requirements.txt": "-e .\nclick\n",
        "setup.py": "from setuptools import setup\nsetup(name='oldkit', version='1.0', "
                    "packages=['oldkit'])\n",
        "oldkit/__init__.py": "VALUE = 1\n"})
    output: list[str] = []
    built = ensure_environment(git.path, commit, None, DEFAULT_IMAGE, access=index_access,
                               python="3.9", on_output=output.append)
    log = "".join(output)[-3000:]
    with DockerSandbox(git.path, commit, built.image, engine=engine) as box:
        found = box.exec("python3 -m pip --version && python3 -c 'import click; "
                         "print(click.__version__)' && cd /tmp && python3 -c 'import oldkit; "
                         "print(oldkit.__file__)'")
        pip, click, module = found.stdout.split("\n")[:3]
        assert pip.startswith("pip 19.1.1 "), log
        assert click == "7.0", log
        assert module == "/work/repo/oldkit/__init__.py", log


def test_pip_as_of_a_state_that_does_not_run_on_the_python_leaves_the_current_one(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """pip 9 (2017) does not run on Python 3.13: the build keeps the current pip, and says
    so. That is a pip beside the one trixie installed (which pip cannot uninstall), so the
    packages are still dated."""
    name = f"ancientpip-{uuid.uuid4().hex[:8]}"
    git = GitRepo.init(tmp_path / name, name=name)
    git.clock = 1_500_000_000  # 2017-07-14
    commit = git.commit("Old", {"requirements.txt": "six\n"})
    output: list[str] = []
    built = ensure_environment(git.path, commit, None, DEFAULT_IMAGE, access=index_access,
                               python="3.13", on_output=output.append)
    assert "does not run here: the current one stays" in "".join(output)
    with DockerSandbox(git.path, commit, built.image, engine=engine) as box:
        found = box.exec("python3 -m pip --version")
        assert found.ok and int(found.stdout.split()[1].split(".")[0]) >= 26, found.stderr
        six = box.exec("python3 -c 'import six; print(six.__version__)'")
        assert six.stdout.strip() == "1.10.0"


def test_plugins_of_an_old_pytest_are_upgraded_with_it(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """pytest 5.4 is replaced by 7.x; pytest-rerunfailures 9.0 (it imports `_pytest.resultlog`,
    gone since pytest 6.1) is upgraded to a release that loads with that pytest, so the tests
    run instead of stopping at the plugin's import."""
    probe_with_pins(engine, tmp_path, index_access, "oldplugin",
                    "pytest==5.4.1\npytest-rerunfailures==9.0\n")


def test_a_plugin_that_fails_as_pytest_registers_it_is_upgraded(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """sqlparse's 2013 test pins: pytest-xdist 1.8 imports with pytest 7, then calls
    `pluginmanager.addhooks`, which pytest 7 no longer has; pytest-cov 1.6 defines
    `pytest_funcarg__cov`, a hook pytest 7 refuses. Either stopped pytest before it collected
    anything. Both are upgraded to releases that work with the pytest in place."""
    found = probe_with_pins(engine, tmp_path, index_access, "oldhooks",
                            "pytest==7.4.4\npytest-xdist==1.8\npytest-cov==1.6\n",
                            also="python3 -m pip list --format=freeze")
    assert "pytest-xdist==1.8" not in found and "pytest-cov==1.6" not in found, found


def test_a_plugin_that_loads_with_no_pytest_of_today_is_removed(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """pytest-travis-fold 1.3 (sqlparse's 2016 test pins; its last release) imports
    `py.builtin`, which the `py` pytest brings in its stead does not have (the Python 3.13
    image has no `py` library of its own): no upgrade helps, and pytest stopped before
    collecting. The plugin is removed, and the tests run."""
    left = probe_with_pins(engine, tmp_path, index_access, "travisfold",
                           "pytest==8.3.5\npytest-travis-fold==1.3.0\n", python="3.13",
                           also="python3 -m pip show pytest-travis-fold || echo gone")
    assert left.strip() == "gone"


def probe_with_pins(engine: docker.DockerClient, tmp_path: Path, access: PackageAccess,
                    name: str, requirements: str, also: str = "", python: str = "3.11",
                    files: dict[str, str] | None = None) -> str:
    """Build the environment of a state with ``requirements`` (and ``files``, which may
    replace the probe test) on ``python`` and check that its probe test runs and passes; the
    output of ``also``, run in the same sandbox."""
    name = f"{name}-{uuid.uuid4().hex[:8]}"
    git = GitRepo.init(tmp_path / name, name=name)
    commit = git.commit("Pins", {
        "requirements.txt": requirements,
        "tests/test_probe.py": "def test_probe():\n    assert True\n", **(files or {})})
    output: list[str] = []
    built = ensure_environment(git.path, commit, None, DEFAULT_IMAGE, access=access,
                               python=python, on_output=output.append)
    with DockerSandbox(git.path, commit, built.image, engine=engine) as box:
        run = run_tests(box, ("tests/test_probe.py",), timeout=120)
        said = box.exec(also).stdout if also else ""
    told = run.log[-2000:] + "".join(output)[-3000:]
    assert run.error is None, told
    assert run.outcomes == {"tests/test_probe.py::test_probe": PASSED}, told
    return said


def test_broken_plugins_are_found_when_a_plugin_brings_an_old_metadata_finder(
        tmp_path: Path) -> None:
    """A plugin whose import adds a metadata finder the standard library cannot call (an
    old `importlib_metadata` backport, 0.18, does when imported: trio's 2018 test pins) no
    longer fails the listing of broken plugins, which failed trio's environment build; a
    plugin that does not load is still named, and so are one that loads but fails as pytest
    registers it (pytest-xdist 1.8 calls `pluginmanager.addhooks`, gone from pytest 7) and
    one with a hook pytest does not know (pytest-cov 1.6's `pytest_funcarg__cov`); one that
    works is not."""
    site = tmp_path / "site"
    for name, body in (("oldfinder", "import sys\n\n\nclass Finder:\n"
                        "    def find_module(self, *args):\n        return None\n\n"
                        "    def find_spec(self, *args):\n        return None\n\n"
                        "    def find_distributions(self, name=None, path=None):\n"
                        "        return iter([name.upper()])\n\n\n"
                        "sys.meta_path.append(Finder())\n"),
                       ("zzbroken", "raise ImportError('needs _pytest.resultlog')\n"),
                       ("zzoldhooks", "def pytest_addhooks(pluginmanager):\n"
                        "    pluginmanager.addhooks(object())\n"),
                       ("zzfuncarg", "def pytest_funcarg__cov(request):\n    return None\n"),
                       ("zzfine", "def pytest_addoption(parser):\n"
                        "    parser.addoption('--zz-fine')\n")):
        (site / f"{name}-1.0.dist-info").mkdir(parents=True)
        (site / f"{name}.py").write_text(body)
        (site / f"{name}-1.0.dist-info" / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (site / f"{name}-1.0.dist-info" / "entry_points.txt").write_text(
            f"[pytest11]\n{name} = {name}\n")
    python, isolated, flag, code = shlex.split(BROKEN_PLUGINS)
    assert (python, isolated, flag) == ("python3", "-I", "-c")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(site)}, timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["zzbroken", "zzfuncarg", "zzoldhooks"]


def test_an_importlib_metadata_too_old_for_the_python_is_upgraded(
        engine: docker.DockerClient, tmp_path: Path, index_access: PackageAccess) -> None:
    """trio's 2018 pins: pluggy 0.12 imports the `importlib_metadata` backport, and 0.18
    fails at its own import on Python 3.9 and later, so pytest did not start ("'str' object
    has no attribute 'name'"). The backport is upgraded and the tests run."""
    pluggy = probe_with_pins(engine, tmp_path, index_access, "oldmetadata",
                             "pytest==7.4.4\npluggy==0.12.0\nimportlib_metadata==0.18\n",
                             also="python3 -c 'import pluggy; print(pluggy.__version__)'")
    assert pluggy.strip() == "0.12.0", "the state's own pluggy stays"
