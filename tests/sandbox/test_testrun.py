"""The verifier's hidden test run on real suites."""

from __future__ import annotations

from pathlib import Path

import docker

from sandbox.docker import DockerSandbox
from sandbox.factory import DEFAULT_IMAGE
from sandbox.output import DEFAULT_CAP
from sandbox.testrun import (
    FAILED,
    PASSED,
    HiddenTests,
    reference_harness,
    run_hidden,
)
from sandbox.testrun import TestRun as Run  # not collected as a test class
from tests.gitrepo import GitRepo

CASES = 5000


def hidden_run(engine: docker.DockerClient, repo: GitRepo, commit: str,
               targets: tuple[str, ...] = ("tests/test_calc.py",), image: str = DEFAULT_IMAGE,
               timeout: float = 120.0, test_timeout: float = 60.0) -> Run:
    """The verifier's run of ``targets`` in a fresh sandbox of ``commit``, with the commit's
    harness; the run itself must have no error."""
    with DockerSandbox(repo.path, commit, image, engine=engine) as box:
        run = run_hidden(box, HiddenTests(targets, (), reference_harness(repo.path, commit),
                                          timeout=timeout, test_timeout=test_timeout))
    assert run.error is None, run.error
    return run


def test_a_suite_whose_report_outgrows_the_output_cap_is_read_whole(
        engine: docker.DockerClient, tmp_path: Path) -> None:
    """Thousands of parametrized tests write a report of megabytes, far over what a command's
    output keeps: the verifier still reads every outcome (a real suite, `packaging`'s, was
    failed as "could not restore the hidden test run")."""
    repo = GitRepo.init(tmp_path / "many", name="many")
    commit = repo.commit("Many cases", {
        "calc.py": "def double(x):\n    return 2 * x\n",
        "tests/test_calc.py": (
            "import pytest\n\nimport calc\n\n\n"
            f"@pytest.mark.parametrize('x', range({CASES}))\n"
            "def test_double_of_a_rather_long_named_parameter(x):\n"
            "    assert calc.double(x) == x + x\n")})
    run = hidden_run(engine, repo, commit, timeout=240.0)
    assert len(run.outcomes) == CASES and set(run.outcomes.values()) == {PASSED}
    assert CASES * 100 > DEFAULT_CAP, "the report must outgrow a command's output cap"


def _image_with_plugin(engine: docker.DockerClient, context: Path, name: str,
                       source: str) -> str:
    """An image of the default one with a pytest plugin ``name`` installed (an entry point,
    as pip installs it)."""
    info = context / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (context / f"{name}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{name} = {name}\n")
    (info / "RECORD").write_text(f"{name}.py,,\n{name}-1.0.dist-info/METADATA,,\n")
    (context / "Dockerfile").write_text(
        f"FROM {DEFAULT_IMAGE}\nCOPY . /tmp/plug\nUSER root\n"
        "RUN site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') "
        f"&& mkdir -p \"$site\" && cp -r /tmp/plug/{name}.py /tmp/plug/{name}-1.0.dist-info "
        "\"$site\"/\n")
    image, _ = engine.images.build(path=str(context), labels={"davinci.env": "1"}, rm=True)
    return str(image.id)


def _strict_project(path: Path) -> tuple[GitRepo, str]:
    """A project whose warnings are errors (`filterwarnings = ["error"]`, as `packaging` and
    `starlette` have), with one passing test."""
    repo = GitRepo.init(path, name="strict")
    commit = repo.commit("Strict warnings", {
        "pyproject.toml": '[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n',
        "calc.py": "def double(x):\n    return 2 * x\n",
        "tests/test_calc.py": "import calc\n\n\ndef test_double():\n"
                              "    assert calc.double(2) == 4\n"})
    return repo, commit


def test_a_project_whose_warnings_are_errors_runs_with_installed_plugins(
        engine: docker.DockerClient, tmp_path: Path) -> None:
    """The runner imports the installed pytest plugins before the work tree joins the path,
    so pytest cannot rewrite their asserts and warns; a project with
    `filterwarnings = ["error"]` (as `packaging` has) must still run its tests."""
    image = _image_with_plugin(engine, tmp_path / "image", "earlyplug",
                               "def pytest_configure(config):\n    pass\n")
    repo, commit = _strict_project(tmp_path / "strict")
    run = hidden_run(engine, repo, commit, image=image)
    assert run.outcomes == {"tests/test_calc.py::test_double": PASSED}


def test_a_plugin_of_an_older_pytest_starts_when_warnings_are_errors(
        engine: docker.DockerClient, tmp_path: Path) -> None:
    """A state's pytest-cov 2 marks a hook the old way (`@pytest.mark.tryfirst`), which the
    newer pytest an environment has deprecates: registered while the project's warnings are
    errors, pytest did not start (starlette). The project never saw that warning; the runs
    ignore it."""
    image = _image_with_plugin(engine, tmp_path / "image", "oldplug", (
        "import pytest\n\n\nclass Old:\n    @pytest.mark.tryfirst\n"
        "    def pytest_runtest_setup(self, item):\n        pass\n\n\n"
        "def pytest_load_initial_conftests(early_config, parser, args):\n"
        "    early_config.pluginmanager.register(Old(), 'old')\n"))
    repo, commit = _strict_project(tmp_path / "strict")
    run = hidden_run(engine, repo, commit, image=image)
    assert run.outcomes == {"tests/test_calc.py::test_double": PASSED}


def test_a_project_the_runner_depends_on_is_tested_from_the_work_tree(
        engine: docker.DockerClient, tmp_path: Path) -> None:
    """pytest imports `packaging` (an installed copy) before the tests run; the repository
    under test is `packaging` itself, in a `src/` layout: its tests import the work tree's,
    with the module the PR adds."""
    repo = GitRepo.init(tmp_path / "packaging", name="packaging")
    commit = repo.commit("Add direct_url", {
        "src/packaging/__init__.py": "__version__ = '99.0.dev0'\n",
        "src/packaging/direct_url.py": "def scheme(url):\n    return url.split(':', 1)[0]\n",
        "tests/test_direct_url.py": (
            "import packaging\nfrom packaging.direct_url import scheme\n\n\n"
            "def test_scheme():\n    assert scheme('file:///x') == 'file'\n\n\n"
            "def test_version_is_the_work_trees():\n"
            "    assert packaging.__version__ == '99.0.dev0'\n")})
    with DockerSandbox(repo.path, commit, DEFAULT_IMAGE, engine=engine) as box:
        assert box.exec("python3 -c 'import packaging'").ok, "the image has packaging"
        run = run_hidden(box, HiddenTests(("tests/test_direct_url.py",), (),
                                          reference_harness(repo.path, commit),
                                          timeout=120.0))
    assert run.error is None, run.error
    assert set(run.outcomes.values()) == {PASSED} and len(run.outcomes) == 2, run.outcomes


def test_a_package_that_imports_its_generated_version_module_is_tested(
        engine: docker.DockerClient, tmp_path: Path) -> None:
    """setuptools_scm writes `src/kit/_version.py` at build time and git does not hold it:
    the work tree gets the module a build would write (in its starting commit, so never in
    the agent's diff), and the package imports."""
    repo = GitRepo.init(tmp_path / "kit", name="kit")
    commit = repo.commit("Versioned", {
        "pyproject.toml": '[tool.setuptools_scm]\nversion_file = "src/kit/_version.py"\n',
        ".gitignore": "src/kit/_version.py\n",
        "src/kit/__init__.py": "from ._version import version as __version__\n\n"
                               "def double(x):\n    return 2 * x\n",
        "tests/test_kit.py": "import kit\n\n\ndef test_double():\n"
                             "    assert kit.double(2) == 4 and kit.__version__\n"})
    with DockerSandbox(repo.path, commit, DEFAULT_IMAGE, engine=engine) as box:
        run = run_hidden(box, HiddenTests(("tests/test_kit.py",), (),
                                          reference_harness(repo.path, commit), timeout=120.0))
        assert box.diff() == ""
    assert run.error is None, run.error
    assert set(run.outcomes.values()) == {PASSED}, run.outcomes


def test_the_version_modules_a_build_writes_are_read_from_its_configuration() -> None:
    from sandbox.tree import VERSION_MODULE, generated_version_files
    hatch = b'[tool.hatch.build.hooks.vcs]\nversion-file = "src/a/version.py"\n'
    assert generated_version_files({"pyproject.toml": hatch}) == {"src/a/version.py":
                                                                 VERSION_MODULE}
    setup = b"setup(use_scm_version={'write_to': 'b/_version.py'})\n"
    assert list(generated_version_files({"setup.py": setup})) == ["b/_version.py"]
    held = {"pyproject.toml": b'[tool.setuptools_scm]\nwrite_to = "c/_v.py"\n', "c/_v.py": b""}
    assert generated_version_files(held) == {}
    outside = b'[tool.setuptools_scm]\nwrite_to = "../elsewhere.py"\n'
    assert generated_version_files({"pyproject.toml": outside}) == {}
    assert generated_version_files({"pyproject.toml": b"not [ toml"}) == {}


def test_a_test_that_hangs_fails_alone_and_the_others_are_read(
        engine: docker.DockerClient, tmp_path: Path) -> None:
    """One test waits forever on a socket (httpx's TLS test did, on a state's packages) and
    one sleeps in its fixture's tear-down: each fails at the per-test limit and the run goes
    on, so the other tests still say passed or failed; before, the whole run went past its
    limit and no test had an outcome."""
    repo = GitRepo.init(tmp_path / "hangs", name="hangs")
    commit = repo.commit("Add calc", {
        "calc.py": "def double(x):\n    return 2 * x\n",
        "tests/test_calc.py": (
            "import socket\nimport time\n\nimport pytest\n\nimport calc\n\n\n"
            "@pytest.fixture\ndef slow_server():\n    yield\n    time.sleep(3600)\n\n\n"
            "def test_waits_for_a_server():\n    here, there = socket.socketpair()\n"
            "    try:\n        here.recv(1)\n    except Exception:\n        pass\n"
            "    here.recv(1)\n\n\n"
            "def test_tears_down_slowly(slow_server):\n    assert calc.double(1) == 2\n\n\n"
            "def test_double():\n    assert calc.double(2) == 4\n\n\n"
            "def test_wrong():\n    assert calc.double(2) == 5\n")})
    run = hidden_run(engine, repo, commit, test_timeout=3.0)
    test = "tests/test_calc.py::"
    assert {name: run.outcomes.get(test + name) for name in (
        "test_waits_for_a_server", "test_double", "test_wrong")} == {
        "test_waits_for_a_server": FAILED, "test_double": PASSED, "test_wrong": FAILED}
    assert run.outcomes.get(test + "test_tears_down_slowly") != PASSED
    assert "ran past 3 s" in run.messages[test + "test_waits_for_a_server"]


def test_a_test_file_that_cannot_be_collected_errs_alone(engine: docker.DockerClient,
                                                         tmp_path: Path) -> None:
    """tomlkit's conftest parametrizes one test file from a git submodule the sandbox does
    not hold: that file cannot be collected, and before, pytest stopped there and no test of
    any file had an outcome. Its tests have none now (so none passes), the others run."""
    repo = GitRepo.init(tmp_path / "submodule", name="submodule")
    commit = repo.commit("Add calc", {
        "calc.py": "def double(x):\n    return 2 * x\n",
        "tests/conftest.py": (
            "import os\n\n\ndef pytest_generate_tests(metafunc):\n"
            "    if 'case' in metafunc.fixturenames:\n"
            "        metafunc.parametrize('case', os.listdir('tests/toml-test/tests'))\n"),
        "tests/test_cases.py": "def test_case(case):\n    assert case\n",
        "tests/test_calc.py": ("import calc\n\n\ndef test_double():\n"
                               "    assert calc.double(2) == 4\n")})
    run = hidden_run(engine, repo, commit, ("tests/test_calc.py", "tests/test_cases.py"))
    assert run.outcomes.get("tests/test_calc.py::test_double") == PASSED
    assert not any(test.startswith("tests/test_cases.py::") and outcome == PASSED
                   for test, outcome in run.outcomes.items())


def test_a_test_suite_kept_as_a_submodule_is_there_and_restored(
        engine: docker.DockerClient, tmp_path: Path) -> None:
    """The cases tomlkit's tests read come from a submodule: the sandbox holds them at the
    recorded commit, and an agent that rewrites a case to match its wrong code finds the
    case put back for the hidden run."""
    suite = GitRepo.init(tmp_path / "suite", name="suite")
    suite.commit("Cases", {"cases/add.txt": "2 2 4\n"})
    repo = GitRepo.init(tmp_path / "project")
    repo.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(suite.path),
             "tests/suite")
    commit = repo.commit("Add calc and its suite", {
        "calc.py": "def add(a, b):\n    return a + b\n",
        "tests/test_calc.py": (
            "import pathlib\n\nimport calc\n\n\ndef test_cases():\n"
            "    for case in pathlib.Path('tests/suite/cases').iterdir():\n"
            "        a, b, total = map(int, case.read_text().split())\n"
            "        assert calc.add(a, b) == total\n")})
    tests = HiddenTests(("tests/test_calc.py",), (), reference_harness(repo.path, commit),
                        timeout=120.0)
    with DockerSandbox(repo.path, commit, DEFAULT_IMAGE, engine=engine) as box:
        honest = run_hidden(box, tests)
        box.exec("printf 'def add(a, b):\\n    return a - b\\n' > calc.py && "
                 "printf '2 2 0\\n' > tests/suite/cases/add.txt")
        assert box.exec("python3 -m pytest -q tests/test_calc.py").exit_code == 0  # fooled
        cheat = run_hidden(box, tests)
    assert honest.outcomes == {"tests/test_calc.py::test_cases": PASSED}, honest.log[-2000:]
    assert cheat.outcomes == {"tests/test_calc.py::test_cases": FAILED}
    assert "tests/suite/cases/add.txt" in cheat.integrity.restored  # type: ignore[union-attr]


def test_tests_that_start_processes_with_spawn_run_once(engine: docker.DockerClient,
                                                        tmp_path: Path) -> None:
    """loguru's tests start processes with `spawn` and `forkserver`: such a child imports the
    runner's file as `__mp_main__` with its arguments, and ran the whole suite again inside
    itself, so every such test hung until its limit; now the child only does its work."""
    repo = GitRepo.init(tmp_path / "spawn", name="spawn")
    commit = repo.commit("Add calc", {
        "calc.py": "def double(x):\n    return 2 * x\n",
        "tests/test_calc.py": (
            "import multiprocessing\n\nimport pytest\n\nimport calc\n\n\n"
            "@pytest.mark.parametrize('method', ['spawn', 'forkserver'])\n"
            "def test_double_elsewhere(method):\n"
            "    with multiprocessing.get_context(method).Pool(1) as pool:\n"
            "        assert pool.apply(calc.double, (2,)) == 4\n")})
    run = hidden_run(engine, repo, commit, test_timeout=20.0)
    assert run.outcomes == {f"tests/test_calc.py::test_double_elsewhere[{method}]": PASSED
                            for method in ("spawn", "forkserver")}, run.log[-3000:]
