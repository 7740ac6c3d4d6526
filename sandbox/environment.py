"""Environment images: a repository's dependencies installed once per dependency state.

An environment image is the base image plus whatever the repository's install command put
there. Its tag carries a key over the base image, the install command and the dependency
files at the commit, so a rollout reuses the image until one of those changes. The install
command runs as root in a throw-away container that, unlike every sandbox, has a network
(the default bridge): dependencies come from package indexes. The repository copy used by the
build is removed from the image; sandboxes bring their own work tree to the same path, so an
editable install points at the work tree the agent edits.

Dependency files are read from the repository as data (`git show`); nothing of the
repository runs outside a container.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import io
import re
import shlex
import subprocess
import tarfile
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container

from sandbox.base import SandboxError, SandboxUnavailable
from sandbox.docker import WORKDIR, client, labels
from sandbox.interpreters import PythonChoice, python_for
from sandbox.packages import PackageAccess, build_floor, build_network, dated, pip_as_of

ENV_LABEL = "davinci.env"
BUILD_TIMEOUT = 1800.0
BUILD_LOG = "/opt/davinci-build.log"
"""Where an environment image keeps the output of the build that made it (`build_log`),
readable by root only."""
DEPENDENCY_FILE = re.compile(r"^(pyproject\.toml|setup\.py|setup\.cfg|pytest\.ini|"
                             r"[\w.-]*requirements[\w.-]*\.(txt|in)|Pipfile(\.lock)?|"
                             r"poetry\.lock|uv\.lock|tox\.ini|environment\.ya?ml)$")
TEST_EXTRAS = ("test", "tests", "testing", "dev")
"""Extras and dependency groups whose packages the tests usually need."""
SKIPPED_REQUIREMENTS = ("doc", "lint", "typing", "mypy", "style", "release", "build")
"""Requirement files named for work other than running the tests."""
PLUGIN_OPTIONS = {r"--cov\b": "pytest-cov", r"--numprocesses\b|(^|\s)-n\s*\w": "pytest-xdist",
                  r"^\s*asyncio_mode\s*=": "pytest-asyncio",
                  r"--timeout\b|^\s*timeout\s*=": "pytest-timeout",
                  r"--benchmark-": "pytest-benchmark", r"^\s*mock_use_standalone": "pytest-mock",
                  r"--reruns\b": "pytest-rerunfailures", r"^\s*env\s*=": "pytest-env",
                  r"--doctest-plus\b": "pytest-doctestplus"}
"""What the pytest configuration asks for (a pattern, line by line) -> the plugin."""
REQUIREMENT_DIRS = ("requirements",)
MAX_NAMED_FILES = 100
PIP = "python3 -m pip install --no-input --disable-pip-version-check"
UNDATED_PIP = f"env -u PIP_UPLOADED_PRIOR_TO {PIP}"


def _repaired(check: str, requirement: str, what: str) -> str:
    """A step that upgrades ``requirement`` with current releases when the Python ``check``
    fails (a package too old for this Python), and goes on, saying so, when that fails too."""
    return (f"(python3 -I -c {shlex.quote(check)} "
            f"|| {UNDATED_PIP} --upgrade {shlex.quote(requirement)} "
            f"|| echo '{what} does not import here: pytest may not start')")


MODERN_PYTEST = ("(python3 -c 'import pytest, sys; "
                 "sys.exit(int(pytest.__version__.split(\".\")[0]) < 7)' "
                 f"|| {UNDATED_PIP} --upgrade 'pytest>=7,<8' "
                 f"|| {UNDATED_PIP} --upgrade 'pytest>=7')")
"""Old pins of pytest do not run on new Pythons: replace them with the oldest that does
(7.x: old conftests using `py.path` hook arguments still only warn there, which matters under
`filterwarnings = error`), even when packages are installed as of a date."""
OLD_PY_LIB = _repaired("import py; py.path.local", "py>=1.11", "the py library")
"""pytest 7 imports the `py` library whenever one is installed (its own stand-in otherwise),
and an old one (1.9, the py of a 2020 state) does not import on Python 3.11 (its lazy
modules have no `__spec__`): pytest did not start at all. py 1.11 does."""
OLD_METADATA = _repaired('import importlib.util as u; '
                         'u.find_spec("importlib_metadata") and __import__("importlib_metadata")',
                         "importlib_metadata", "importlib_metadata")
"""An `importlib_metadata` backport too old for this Python (0.18, pinned by trio's 2018
state, calls the standard library's finder with a name where 3.9 and later pass a context)
fails at its own import, and pluggy 0.12 imports it: pytest did not start. One that is
installed and does not import is upgraded, with current releases."""
BROKEN_PLUGINS = "python3 -I -c " + shlex.quote("""
import importlib.metadata as m

def started():  # a pytest as it starts: the hooks' history made, no plugin of its own yet
    config = get_config()
    config.hook.pytest_addhooks.call_historic(kwargs=dict(pluginmanager=config.pluginmanager))
    return config.pluginmanager

try:
    from _pytest.config import get_config
    started()  # one that cannot start without plugins says nothing about them
except Exception:
    get_config = None

broken, loaded = set(), []
points = [(dist.metadata['Name'], point) for dist in list(m.distributions())
          for point in dist.entry_points if point.group == 'pytest11']
for name, point in points:
    try:
        plugin = point.load()
        if get_config is not None:
            started().register(plugin, point.name)
        loaded.append((name, point.name, plugin))
    except (Exception, SystemExit):
        broken.add(name)
if get_config is not None and loaded:
    manager, owners = started(), {}
    for name, point_name, plugin in loaded:
        try:
            manager.register(plugin, point_name)
            owners[id(plugin)] = name
        except (Exception, SystemExit):
            pass  # two plugins at odds: neither is broken alone
    while True:
        try:
            manager.check_pending()
            break
        except Exception as error:
            plugin = getattr(error, 'plugin', None)
            if id(plugin) not in owners:
                break
            broken.add(owners.pop(id(plugin)))
            try:
                manager.unregister(plugin)
            except Exception:
                break
print(' '.join(sorted(broken)))
""")
"""The pytest plugins installed that do not load with the installed pytest, by name: those
that do not import; that fail as pytest registers them, which runs their historic hooks
(pytest-xdist 1.8 calls `pluginmanager.addhooks`, gone from pytest 7); and those with hooks
pytest does not know, which it refuses once every plugin is registered (pytest-cov 1.6
defines `pytest_funcarg__cov`, the fixture style pytest 4 dropped). Each stopped pytest
before it collected anything (sqlparse's 2013 states). The distributions are
listed before any plugin loads: loading one can import an old `importlib_metadata` backport
(0.18, pinned by a 2018 state), which adds a finder the standard library cannot call, and the
listing then failed the build."""
PYTEST_PLUGINS = ("(plugins=$(" + BROKEN_PLUGINS + ") && { [ -z \"$plugins\" ] || { "
                  f"{UNDATED_PIP} --upgrade "
                  "\"pytest==$(python3 -c 'import pytest; print(pytest.__version__)')\" "
                  "$plugins || echo \"pytest plugins that do not load: $plugins\"; "
                  "left=$(" + BROKEN_PLUGINS + ") && { [ -z \"$left\" ] || "
                  "{ echo \"pytest plugins that do not load with this pytest, removed: $left\" "
                  "&& python3 -m pip uninstall --yes $left || echo 'they could not be removed'; "
                  "}; }; }; })")
"""Plugins of an old pytest's days that do not load with the pytest put in their place
(pytest-rerunfailures 9 imports `_pytest.resultlog`, gone in pytest 6.1) are upgraded to
releases that do, for that same pytest. One that does not load even so (pytest-travis-fold
1.3, its last release, imports `py.builtin`, which pytest's own `py` does not have) is
removed, and named: pytest loads every plugin installed before it collects anything, so it
stopped every test of the state, where without it only tests using it could fail."""
MODERN_PIP = (f"{UNDATED_PIP} --upgrade 'pip>=26.0' "
              f"|| {UNDATED_PIP} --upgrade 'pip>=26.0,<26.1' "
              f"|| {UNDATED_PIP} --upgrade --ignore-installed 'pip>=26.0' "
              "|| echo 'pip could not be upgraded; packages are installed as they come'")
"""Every build starts with a pip that has `--uploaded-prior-to` (26.0 or later; 26.0 is the
last for Python 3.9, which an index without Requires-Python data may not tell old pip),
whatever the suite ships (bullseye's is 20.3). A pip the distribution installed has no
RECORD and cannot be uninstalled (trixie's 25.1): the new one goes beside it."""
UNRECORDED = "python3 -I -c " + shlex.quote("""
import importlib.metadata as m, re
seen = set()
for dist in m.distributions():
    name = (dist.metadata["Name"] or "").lower()
    if name and name != "pip" and name not in seen and dist.read_text("RECORD") is None:
        seen.add(name)
        print(name + "==" + re.sub(r"[+].*$", "", dist.version))
""")
ADOPT = (f"(specs=$({UNRECORDED}) && {{ [ -z \"$specs\" ] || "
         f"{UNDATED_PIP} --ignore-installed --no-deps --only-binary :all: $specs || "
         f"for spec in $specs; do {UNDATED_PIP} --ignore-installed --no-deps "
         "--only-binary :all: \"$spec\" || echo \"kept the distribution's $spec\"; done; })")
"""The packages the image's distribution installed without a RECORD (Debian's `wheel`,
`pytest`) are installed again by pip, same versions, beside them: pip cannot uninstall a
package that has no RECORD, so a requirement pinning another version of one failed."""
DEVELOP = "python3 -I -c " + shlex.quote("""
import importlib.metadata as m, json, os, site, subprocess, sys
here = 'file://' + os.getcwd()
for dist in m.distributions():
    url = json.loads(dist.read_text('direct_url.json') or '{}').get('url', '')
    if url.rstrip('/') == here:
        subprocess.run([sys.executable, '-m', 'pip', 'uninstall', '-y', '-q',
                        dist.metadata['Name']], check=True)
tree = os.path.join(os.getcwd(), 'src') if os.path.isdir('src') else os.getcwd()
with open(os.path.join(site.getsitepackages()[0], 'davinci-work-tree.pth'), 'w') as f:
    f.write(tree + chr(10))
""")
"""When no editable install works (an old setuptools without PEP 660 under a current pip),
the project is installed as a copy for its dependencies, the copy removed, and the work tree
put on the path (`setup.py develop` by hand), so tests import the code the agent edits."""


SETUP_REQUIREMENTS = "/tmp/davinci-setup-requirements.txt"  # noqa: S108 - inside the build
SETUP_REQUIRES = "python3 -I -c " + shlex.quote(f"""
import glob, os, re, subprocess, sys, tempfile
extras = set(filter(None, sys.argv[1].split(',')))
where = tempfile.mkdtemp()
subprocess.run([sys.executable, 'setup.py', '-q', 'egg_info', '--egg-base', where], check=True)
found = glob.glob(os.path.join(where, '*.egg-info', 'requires.txt'))
section, marker, wanted = '', '', []
for line in (open(found[0]).read().splitlines() if found else []):
    line = line.strip()
    if line.startswith('['):
        section, _, marker = line.strip('[]').partition(':')
    elif line and (not section or section in extras):
        line = re.sub(r'(>=|<=|~=|>|<)\\s*([0-9][0-9.]*)\\.\\*', r'\\1\\2', line)
        wanted.append(line + ('; ' + marker if marker else ''))
if not wanted:
    sys.exit('setup.py requires nothing that could be read')
open('{SETUP_REQUIREMENTS}', 'w').write(chr(10).join(wanted) + chr(10))
""")
"""When pip cannot install the project at all (uvicorn's 2021 `setup.py` asks for `click>=7.*`,
metadata current pip refuses, and its setuptools of the day cannot install editable), what
`setup.py` requires (with the extras the tests need) is read from its `egg_info`, with such
specifiers made valid (`>=7`), for :func:`one_by_one`: before, the state got none of its
dependencies, and every test failed to import `asgiref`. Takes the extras, comma-separated."""
OLD_SETUPTOOLS = "/tmp/davinci-old-setuptools"  # noqa: S108 - inside the build


def setup_requires(extras: str) -> str:
    """Install what `setup.py` requires (:data:`SETUP_REQUIRES`) one by one; its `egg_info`
    runs with the setuptools installed, else with one older than 66, the last whose own
    `packaging` still read specifiers like `>=7.*` (on the side, for that command only)."""
    read = f"{SETUP_REQUIRES} {shlex.quote(extras)}"
    return (f"({read} || ({UNDATED_PIP} --target {OLD_SETUPTOOLS} 'setuptools<66' && "
            f"PYTHONPATH={OLD_SETUPTOOLS} {read})) && {one_by_one(SETUP_REQUIREMENTS, 'setup.py')}")


BUILD_PROGRESS_SECONDS = 10.0
"""How often a build that runs reports that it still does."""


@dataclass(frozen=True)
class BuildProgress:
    """A build of an environment image still running, for progress output."""

    image: str
    elapsed: float
    """Seconds since the build started."""

    def describe(self) -> str:
        minutes, seconds = divmod(int(self.elapsed), 60)
        return (f"building the environment {self.image} … "
                + (f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"))


@contextlib.contextmanager
def reporting(image: str, on_build: Callable[[BuildProgress], None] | None,
              every: float = BUILD_PROGRESS_SECONDS) -> Iterator[None]:
    """Call ``on_build`` at the start and then every ``every`` seconds while the block runs
    (a build can take up to BUILD_TIMEOUT)."""
    if on_build is None:
        yield
        return
    report = on_build
    started = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            report(BuildProgress(image, time.monotonic() - started))

    report(BuildProgress(image, 0.0))
    thread = threading.Thread(target=tick, name="davinci-build-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class EnvironmentBuildFailed(SandboxError):
    """The install command failed; the message ends with the tail of its output."""


@dataclass(frozen=True)
class Environment:
    image: str
    key: str
    install: str | None
    """The command that was (or would be) run; None when the base image serves as is."""
    built: bool
    """True when this call built the image, False when it was there already."""
    seconds: float = 0.0
    python: PythonChoice | None = None
    """The base image chosen for the state's Python, and why."""


def dependency_files(repo: Path, commit: str, install: str | None = None) -> dict[str, bytes]:
    """The files the environment depends on at ``commit``: path -> content.

    Top-level dependency files, requirement files in a `requirements/` folder, and every file
    the install command names (``pip install -r ci/test.txt -c constraints.txt``), so an edit
    to any of them builds a new environment.
    """
    top = _git(repo, "ls-tree", "--name-only", commit).decode().splitlines()
    names = {name for name in top if DEPENDENCY_FILE.match(name)}
    folder = _git(repo, "ls-tree", "-r", "--name-only", commit, "--", *REQUIREMENT_DIRS)
    names |= {name for name in folder.decode().splitlines() if name.endswith((".txt", ".in"))}
    names |= _named_files(repo, commit, install)
    if "tox.ini" in names:
        tox = _git(repo, "show", f"{commit}:tox.ini")
        names |= _named_files(repo, commit, " ".join(map(shlex.quote, _tox_requirements(tox))))
    return {name: _git(repo, "show", f"{commit}:{name}") for name in sorted(names)}


def _named_files(repo: Path, commit: str, install: str | None) -> set[str]:
    """Words of the install command that are files at ``commit`` (`-rfile`, `--x=file` too)."""
    try:
        words = shlex.split(install or "")
    except ValueError:
        return set()  # unbalanced quotes: the build will say so
    candidates = set()
    for word in words:
        word = re.sub(r"^(?:-[rce]|--[\w-]+=)", "", word).removeprefix("./")
        if word and not word.startswith(("-", "/")) and "://" not in word \
                and word not in (".", ".."):
            candidates.add(word)
    if not candidates:
        return set()
    # Paths after "--" are never options; a runaway command is looked at only so far.
    listing = _git(repo, "ls-tree", commit, "--",
                   *sorted(candidates)[:MAX_NAMED_FILES]).decode().splitlines()
    return {line.split("\t", 1)[1] for line in listing if line.split(" ", 2)[1:2] == ["blob"]}


def detect_install(files: dict[str, bytes]) -> str | None:
    """The install command for a repository that names none in `.github/davinci.yml`.

    Requirement files for running the tests (top-level `requirements*.txt`,
    `*-requirements.txt`, and the test and dev files of a `requirements/` folder), the
    packages `pyproject.toml`, `setup.cfg` and `tox.ini` declare (with the test and dev extras
    and dependency groups, PDM's and Poetry's included), pytest and the plugins its
    configuration asks for; then the project itself, editable (with what `setup.py`
    requires; without, or without build isolation, when that fails), so a `src/` layout
    imports the work tree the agent edits (a project that cannot be built still gets its
    dependencies). None when nothing is declared.
    """
    steps = [_requirements(name) for name in _requirement_files(files)]
    packages = _declared(files)
    texts = b"\n".join(files.values()).decode("utf-8", "replace")
    project = _project(files)
    if not steps and not packages and not project:
        return None
    wanted = [*packages, *_plugins(files)]
    if not re.search(r"(?m)^\s*pytest\b(?!-)", texts + "\n" + "\n".join(wanted)):
        wanted.append("pytest")
    if wanted:
        steps.append(_packages(list(dict.fromkeys(wanted))))
    if project:
        extras = _project_extras(files)
        with_extras = f"{PIP} -e {shlex.quote(f'.[{extras}]')} || " if extras else ""
        copy = f"{PIP} {shlex.quote(f'.[{extras}]')} || " if extras else ""
        undated = f"{copy.replace(PIP, UNDATED_PIP)}{UNDATED_PIP} ."
        # Last before going without dependencies: the copy built with current tools (an old
        # state's own setuptools may not run on this Python).
        requires = setup_requires(extras)
        steps.append(f"({with_extras}{PIP} -e . || (({copy}{PIP} .) && {DEVELOP}) || "
                     f"(({undated}) && {DEVELOP}) || (({requires}) && {DEVELOP}) || "
                     f"{PIP} --no-deps -e . || "
                     f"{PIP} --no-deps --no-build-isolation -e . || echo 'the project itself "
                     "could not be installed; tests import it from the work tree')")
    steps.extend((OLD_METADATA, MODERN_PYTEST, OLD_PY_LIB, PYTEST_PLUGINS))
    return " && ".join(steps)


LOCAL_REQUIREMENT = r"^[[:space:]]*((-e|--editable)[[:space:]]*)?(\.|/|file:)"
"""A requirement line naming a local path (`-e .`): the project itself, mostly."""


def _requirements(name: str) -> str:
    """Install a requirement file; when that fails, again without its URL lines
    (`git+https://…` pins of docs tools reach hosts other than the package index) and its
    local paths (`-e .`: an old state's build back-end may not build editable under a
    current pip; the project step after this one has its own ways to install it); when that
    fails too, one requirement at a time, so that one that cannot install (an optional
    package whose C extension does not build here) costs only itself, and is named."""
    quoted = shlex.quote(name)
    without = "/tmp/davinci-requirements-without-urls.txt"  # noqa: S108 - inside the build
    local = shlex.quote(LOCAL_REQUIREMENT)
    return (f"({PIP} -r {quoted} || (grep -v -E -e '://' -e {local} {quoted} > {without}; "
            f"{PIP} -r {without}) || {one_by_one(without, name)})")


def _not_fatal(step: str) -> str:
    """A chain's first state's packages help its early stages; a build goes on without them."""
    return f"({step} || echo 'the dependencies of the first state did not all install')"


ONE_REQUIREMENT = "/tmp/davinci-one-requirement.txt"  # noqa: S108 - inside the build
DECLARED = "/tmp/davinci-declared-packages.txt"  # noqa: S108 - inside the build


def _packages(wanted: list[str]) -> str:
    """Install the packages the project's configuration declares (and pytest with its
    plugins) in one go; when that fails, one by one (:func:`one_by_one`), so that one with no
    release that installs here costs only itself: before, a dated install of a
    `pyproject.toml` that wanted a 2019 `typed-ast` failed as a whole, and every package of
    the state came as of today."""
    quoted = " ".join(shlex.quote(d) for d in wanted)
    return (f"({PIP} {quoted} || (printf '%s\\n' {quoted} > {DECLARED} && "
            f"{one_by_one(DECLARED, 'the declared packages', folder='.')}))")


def one_by_one(path: str, name: str, folder: str | None = None) -> str:
    """Install the requirements of the file at ``path`` one by one (continued lines joined,
    comments dropped, and hashes: a lone pin cannot satisfy hash-checking); an option line
    (`-r base.txt`) runs as it is, from ``folder`` (by default, that of the file ``name``).
    In a dated install, a line that has no release of the state's date that installs here (a
    2019 `typed-ast`, which does not build on Python 3.9) gets current releases, and says so:
    before, that one line failed the dated install, and every package of the state came as
    of today. What fails even so is named (after ``name``), and the step succeeds."""
    folder = shlex.quote(folder or str(Path(name).parent))
    tidy = r"""sed -e ':a' -e '/\\$/N; s/\\\n//; ta' -e '/^[[:space:]]*\(#.*\)\?$/d' """ \
        r"""-e 's/[[:space:]]--hash[= ][^[:space:]]*//g'"""
    return (f"(cd {folder} && {tidy} {path} "
            "| while IFS= read -r line; do "
            "case \"$line\" in -*) set -- $line;; "
            f"*) printf '%s\\n' \"$line\" > {ONE_REQUIREMENT} && set -- -r {ONE_REQUIREMENT};; "
            f"esac; {PIP} \"$@\" && continue; "
            f"[ -n \"${{PIP_UPLOADED_PRIOR_TO:-}}\" ] && {UNDATED_PIP} \"$@\" && "
            f"{{ echo \"current releases for {name}: $line\"; continue; }}; "
            f"echo \"left out of {name}: $line\"; done)")


_LOCAL_EXTRAS = re.compile(r"(?m)^[ \t]*(?:(?:-e|--editable)[ \t]*)?\.\[([^\]\n]+)\]")
"""A requirement line installing the project with extras (`-e .[standard]`)."""


def _project_extras(files: dict[str, bytes]) -> str:
    """The project's extras the tests need, comma-separated: those a requirement file
    installs the project with (`-e .[standard]`: the line itself is left to the project
    step), and those tox's default test environment installs (`[testenv] extras = tests`),
    else the test and dev extras `setup.py` defines (a dict pip cannot be asked about without
    running it; their names are enough)."""
    local = [word.strip() for name in _requirement_files(files)
             for match in _LOCAL_EXTRAS.finditer(files[name].decode("utf-8", "replace"))
             for word in match.group(1).split(",")]
    named = [word for word in re.split(r"[\s,]+", _testenv(files.get("tox.ini", b""), "extras"))
             if re.fullmatch(r"[A-Za-z][\w.-]*", word)]
    if not named:
        setup = files.get("setup.py", b"").decode("utf-8", "replace")
        named = [extra for extra in TEST_EXTRAS
                 if re.search(rf"""["']{extra}["']\s*:""", setup)]
    return ",".join(dict.fromkeys(word for word in (*local, *named)
                                  if re.fullmatch(r"[A-Za-z][\w.-]*", word)))


def _project(files: dict[str, bytes]) -> bool:
    return any(name in files for name in ("pyproject.toml", "setup.py", "setup.cfg")) and (
        "pyproject.toml" not in files or b"[project]" in files["pyproject.toml"]
        or b"[build-system]" in files["pyproject.toml"] or "setup.py" in files)


def _testenv(tox: bytes, key: str) -> str:
    """``key`` of tox's default test environment (`[testenv]`); '' when there is none or the
    file does not parse."""
    config = configparser.ConfigParser(interpolation=None)
    try:
        config.read_string(tox.decode())
        return config.get("testenv", key, fallback="")
    except (configparser.Error, UnicodeDecodeError):
        return ""


_TOX_REQUIREMENT = re.compile(r"^(?:([\w,.!{}-]+):\s*)?(?:-r|--requirement[= ]?)\s*(\S+)$")
"""A line of tox's `deps` naming a requirement file, perhaps for some factors only."""


def _tox_requirements(tox: bytes) -> list[str]:
    """The requirement files tox's default test environment installs (`deps =
    -rtests/requirements.txt`, also under a test or Python factor, `tests: -r…`, with
    `{toxinidir}/` dropped): tablib's 2019 tests needed MarkupPy from there, and no other
    file named it."""
    found = []
    for line in _testenv(tox, "deps").splitlines():
        match = _TOX_REQUIREMENT.match(line.strip())
        if match is None:
            continue
        factors = re.split(r"[,-]", (match.group(1) or "").lstrip("!"))
        if match.group(1) and not any(f.startswith(("py", "test", "unit")) for f in factors):
            continue  # docs, lint, typing: not what the tests need
        found.append(match.group(2).replace("{toxinidir}/", "").removeprefix("./"))
    return found


def _requirement_files(files: dict[str, bytes]) -> list[str]:
    """The requirement files for running the tests (see :func:`detect_install`), and those
    tox's test environment installs."""
    named = [name for name in _tox_requirements(files.get("tox.ini", b"")) if name in files]
    found = []
    for name in sorted(files):
        folder, _, base = name.rpartition("/")
        if folder not in ("", *REQUIREMENT_DIRS) or "requirements" not in name:
            continue
        if any(word in base.lower() for word in SKIPPED_REQUIREMENTS):
            continue
        if folder and not any(word in base for word in ("test", "dev")):
            continue  # a folder's runtime pins come with the project's own dependencies
        if base.endswith(".in") and name[:-3] + ".txt" in files:
            continue  # the compiled pins win
        if base.endswith((".txt", ".in")):
            found.append(name)
    return [*found, *(name for name in dict.fromkeys(named) if name not in found)]


def _declared(files: dict[str, bytes]) -> list[str]:
    """Packages from pyproject.toml (PEP 621's, PDM's, Poetry's and Flit's own tables, before
    PEP 621: typer's 2020 `[tool.flit.metadata.requires-extra] test`), setup.cfg and tox.ini
    (test extras and groups too)."""
    wanted: list[str] = []
    if "pyproject.toml" in files:
        try:
            data = tomllib.loads(files["pyproject.toml"].decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {}
        project = data.get("project", {})
        tool = data.get("tool", {})
        flit = tool.get("flit", {}).get("metadata", {})  # Flit's own, before PEP 621
        wanted += project.get("dependencies", [])
        wanted += flit.get("requires", []) if isinstance(flit.get("requires"), list) else []
        for table in (project.get("optional-dependencies", {}),
                      data.get("dependency-groups", {}),
                      tool.get("pdm", {}).get("dev-dependencies", {}),
                      flit.get("requires-extra", {})):
            for extra in TEST_EXTRAS:
                wanted += table.get(extra, []) if isinstance(table.get(extra), list) else []
        wanted += _poetry_development(tool.get("poetry", {}))
    config = configparser.ConfigParser(interpolation=None)
    for name, section, keys in (("setup.cfg", "options", ("install_requires",)),
                                ("setup.cfg", "options.extras_require", TEST_EXTRAS),
                                ("tox.ini", "testenv", ("deps",))):
        if name not in files:
            continue
        with contextlib.suppress(configparser.Error, UnicodeDecodeError):
            config.read_string(files[name].decode())
            for key in keys:
                wanted += config.get(section, key, fallback="").splitlines()
            config.clear()
    return [w.strip() for w in wanted if isinstance(w, str) and _plain(w.strip())]


def _poetry_development(poetry: dict[str, object]) -> list[str]:
    """The names in Poetry's test and dev groups (`[tool.poetry.group.test.dependencies]`,
    the older `[tool.poetry.dev-dependencies]`): its version constraints (`^7.0`) are not
    pip's, and the state's date picks the versions anyway."""
    tables = [poetry.get("dev-dependencies")]
    groups = poetry.get("group")
    if isinstance(groups, dict):
        tables += [group.get("dependencies") for name, group in groups.items()
                   if name in TEST_EXTRAS and isinstance(group, dict)]
    return [name for table in tables if isinstance(table, dict) for name in table
            if name.lower() != "python"]


def _plain(requirement: str) -> bool:
    """A requirement pip can take on its own (not an option, a path, or a tox factor)."""
    return bool(requirement) and not requirement.startswith(("-", ".", "{", "#", "/")) \
        and not re.match(r"^[\w,.-]+:\s", requirement) and "{" not in requirement


def _plugins(files: dict[str, bytes]) -> list[str]:
    config = b"\n".join(files.get(n, b"") for n in ("pyproject.toml", "pytest.ini", "tox.ini",
                                                     "setup.cfg")).decode("utf-8", "replace")
    found = [plugin for option, plugin in PLUGIN_OPTIONS.items()
             if re.search(option, config, re.MULTILINE)]
    for line in re.findall(r"required_plugins\s*=\s*(.+)", config):
        found += re.findall(r"[A-Za-z0-9][\w.-]*(?:[<>=!~]=?[\w.]+)?", line)
    return found


BUILD_FORMAT = "2"
"""Part of every key: images built before the install command's variables were kept out of
the image (format 2) are not reused."""


def environment_key(base_id: str, install: str | None, files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    digest.update(BUILD_FORMAT.encode() + b"\0" + base_id.encode() + b"\0"
                  + (install or "").encode() + b"\0")
    for name, content in sorted(files.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def image_name(repo: Path, key: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", repo.name.lower().removesuffix(".git")).strip("-")
    return f"davinci-env-{slug or 'repo'}:{key[:16]}"


def ensure_environment(repo: Path, commit: str, install: str | None, base_image: str,
                       engine: docker.DockerClient | None = None,
                       timeout: float = BUILD_TIMEOUT,
                       on_output: Callable[[str], None] | None = None,
                       network: str = "auto", access: PackageAccess | None = None,
                       first: str | None = None, python: str = "auto",
                       as_of: bool = True,
                       on_build: Callable[[BuildProgress], None] | None = None) -> Environment:
    """The image to run sandboxes of ``repo`` at ``commit`` from; built when missing.

    ``install`` is the repository's configured install command; None detects one from the
    dependency files. Without anything to install, the base image itself is the environment.
    With ``first`` (an earlier commit, a chain's first base) and a detected command, what
    ``first`` declares is installed before (a failure there is not fatal), so tests of the
    chain's early stages find packages its later history dropped.
    ``network`` is the Docker network the build runs on (`auto`: the first from which the
    index answers, see sandbox.packages; `none` for an offline build); ``access`` carries the
    host's package settings and CA bundle into the build (none given: bridge, no settings).
    ``python`` is `auto` (the base image for what ``commit`` declares, see
    sandbox.interpreters) or a version X.Y whose base image is used. With ``as_of``, each
    step first installs the packages as they were when its commit was made (a failure falls
    back to current releases). While an image is built, ``on_build`` hears every
    BUILD_PROGRESS_SECONDS that it still is.
    """
    engine = engine or client()
    choice = python_for(engine, repo, commit, base_image, python)
    base_image = choice.image
    try:
        base = engine.images.get(base_image)
    except ImageNotFound as exc:
        raise SandboxUnavailable(f"sandbox image {base_image} is missing; build it with "
                                 "`davinci sandbox build-base`") from exc
    files = dependency_files(repo, commit, install)
    command = install if install is not None else detect_install(files)
    steps = [(commit, command)] if command else []
    with_first = False
    if install is None and first not in (None, commit):
        early_files = dependency_files(repo, str(first))
        early = detect_install(early_files)
        if early and early_files != files:
            steps.insert(0, (str(first), early))
            with_first = True
            files = {**{f"first/{k}": v for k, v in early_files.items()}, **files}
            command = " && ".join([_not_fatal(early), *(step for _, step in steps[1:])])
    if not command:
        return Environment(base_image, "", None, built=False, python=choice)
    access = access or PackageAccess()
    if "pip" in command and as_of:  # packages as of each step's commit (the key says so)
        steps = [(at, dated(step, _commit_date(repo, at), access)) for at, step in steps]
    if with_first:  # the first state's packages, as of its date or current: not fatal
        steps[0] = (steps[0][0], _not_fatal(steps[0][1]))
    if "pip" in command:  # one pip first
        if as_of:
            floor = build_floor(access)
            if floor:
                steps.insert(0, (steps[0][0], floor))
            # pip itself last, as of the oldest state: code a chain's later PRs wrote still
            # supports the pip of a few weeks before, while the first base may not run on
            # the pip released after it.
            oldest = steps[0][0]
            pip_step = pip_as_of(_commit_date(repo, oldest), access)
            if pip_step:
                steps.append((commit, pip_step))
        steps[:0] = [(steps[0][0], MODERN_PIP), (steps[0][0], ADOPT)]
    key = environment_key(base.id, "\n".join(step for _, step in steps), files)
    name = image_name(repo, key)
    if _has_image(engine, name):
        return Environment(name, key, command, built=False, python=choice)
    started = time.perf_counter()
    chosen = build_network(engine, base_image, access, network)
    try:
        with reporting(name, on_build):
            built = _build(engine, repo, commit, steps, base_image, name, key, timeout,
                           on_output, chosen.network, access, command)
    except EnvironmentBuildFailed as exc:
        if not chosen.reachable:
            raise EnvironmentBuildFailed(f"{exc}\n(no package index answers: {chosen.detail})"
                                         ) from exc
        raise
    return Environment(name, key, command, built=built, seconds=time.perf_counter() - started,
                       python=choice)


def _commit_date(repo: Path, commit: str) -> str:
    """The first day of the month after ``commit`` was made (UTC, ISO 8601): packages as the
    developers had them then, give or take a month, so states of one month share an image."""
    stamp = int(_git(repo, "show", "-s", "--format=%ct", commit).decode().strip() or 0)
    made = datetime.fromtimestamp(stamp, tz=UTC)
    year, month = (made.year + 1, 1) if made.month == 12 else (made.year, made.month + 1)
    return f"{year:04d}-{month:02d}-01T00:00:00Z"


def builder_name(image: str) -> str:
    """The build container's name: one builder per environment image on an engine, however
    many workers want it."""
    return "davinci-build-" + image.removeprefix("davinci-env-").replace(":", "-")


def _build(engine: docker.DockerClient, repo: Path, commit: str,
           steps: list[tuple[str, str]], base_image: str,
           name: str, key: str, timeout: float,
           on_output: Callable[[str], None] | None, network: str,
           access: PackageAccess, shown: str) -> bool:
    """Build the image; False when another process was building it and this one waited."""
    while True:
        try:
            container = engine.containers.create(
                base_image, command=["sleep", "infinity"], user="0:0", working_dir=WORKDIR,
                network_mode=network, init=True, name=builder_name(name),
                labels=labels(**{"davinci.build": key}), mounts=access.volumes())
        except APIError as exc:
            if exc.status_code != 409:  # 409: the name is taken, a build of this key runs
                raise
            if _waited_for_other_build(engine, name, key, timeout):
                return False
            continue  # that build failed or was abandoned: try here
        if _has_image(engine, name):  # a builder that just finished left it
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True)
            return False
        _install(container, repo, commit, steps, name, key, timeout, on_output, shown,
                 build_environment(access))
        return True


def build_environment(access: PackageAccess) -> dict[str, str]:
    """The variables of the install command: given to its process only, never to the
    container, whose configuration the committed image keeps; sandboxes from the image would
    otherwise run the tests with this machine's pip settings (index URLs, find-links,
    proxies, a CA path that is not mounted there), which code that reads pip's configuration
    (pip-tools) passes on, and with HOME pointing at root's folder."""
    return {"HOME": "/root", "LANG": "C.UTF-8", **access.environment,
            "PIP_BREAK_SYSTEM_PACKAGES": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _waited_for_other_build(engine: docker.DockerClient, name: str, key: str,
                            timeout: float) -> bool:
    """Wait while another builder of ``key`` works: True once its image is there, False when
    it ended without one (or was left behind by a dead process and is now removed)."""
    deadline = time.monotonic() + timeout + 60
    while time.monotonic() < deadline:
        if _has_image(engine, name):
            return True
        try:
            other = engine.containers.get(builder_name(name))
        except NotFound:  # it ended: with its image (committed just now) or without
            return _has_image(engine, name)
        started = int(other.labels.get("davinci.created", "0") or 0)
        if time.time() - started > timeout + 60:  # its builder died: nothing will finish it
            with contextlib.suppress(NotFound, APIError):
                other.remove(force=True)
            return False
        time.sleep(1)
    raise SandboxError(f"another build of environment {name} did not finish in "
                       f"{timeout + 60:.0f} s")


def _has_image(engine: docker.DockerClient, name: str) -> bool:
    try:
        engine.images.get(name)
    except ImageNotFound:
        return False
    return True


def _install(container: Container, repo: Path, commit: str, steps: list[tuple[str, str]],
             name: str, key: str, timeout: float,
             on_output: Callable[[str], None] | None, shown: str,
             environment: dict[str, str]) -> None:
    """Run each install command on its commit's files, in order, with ``environment``, and
    commit the image; ``shown`` is how a failure names the command."""
    try:
        container.start()
        container.put_archive("/work", _clone_archive(repo, commit))
        script = f"cd {WORKDIR} && " + " && ".join(
            f"git -c advice.detachedHead=false checkout -q -f {shlex.quote(at)} && {command}"
            for at, command in steps)
        seconds = str(max(1, int(timeout)))
        code, output = container.exec_run(["timeout", "-s", "KILL", seconds, "bash", "-c",
                                           script], user="0:0", workdir=WORKDIR,
                                          environment=environment)
        text = output.decode("utf-8", "replace")
        if on_output is not None:
            on_output(text)
        log = _log_text(steps, code, text)
        if code != 0:
            tail = "\n".join(text.strip().splitlines()[-30:])
            reason = "timed out" if code in (124, 137) else f"exited with {code}"
            kept = _keep_failed_log(name, log)
            raise EnvironmentBuildFailed(f"install command {shown!r} {reason} (whole output: "
                                         f"{kept}):\n{tail}")
        container.put_archive(str(Path(BUILD_LOG).parent), _one_file(Path(BUILD_LOG).name,
                                                                     log.encode()))
        cleanup = container.exec_run(["bash", "-c", f"rm -rf {WORKDIR} /root/.cache && "
                                      f"mkdir -p {WORKDIR} && chown 1000:1000 /work"],
                                     user="0:0")
        if cleanup.exit_code != 0:
            raise SandboxError(f"could not clean the build container: {cleanup.output!r}")
        container.stop(timeout=5)
        repository, tag = name.rsplit(":", 1)
        container.commit(repository=repository, tag=tag,
                         changes=["USER agent", "WORKDIR /work", "CMD [\"sleep\", \"infinity\"]",
                                  f"LABEL {ENV_LABEL}=1 {ENV_LABEL}.key={key} "
                                  f"{ENV_LABEL}.repo={repository.removeprefix('davinci-env-')}"])
    finally:
        with contextlib.suppress(NotFound, APIError):
            container.remove(force=True)


def _log_text(steps: list[tuple[str, str]], code: int, output: str) -> str:
    """A build's log: each step (the commit whose files it ran on, the command), the exit
    code, then everything the build printed."""
    listed = "".join(f"$ git checkout {at[:12]} && {command}\n" for at, command in steps)
    return f"{listed}(exit code {code})\n\n{output}"


def _keep_failed_log(image: str, log: str) -> Path:
    """Write a failed build's whole log where its user can read it (a failed build commits
    no image to keep it in); the path."""
    folder = Path(tempfile.gettempdir()) / "davinci-builds"
    folder.mkdir(exist_ok=True)
    path = folder / f"{image.replace(':', '-').replace('/', '-')}.log"
    path.write_text(log, encoding="utf-8")
    return path


def _one_file(name: str, data: bytes) -> bytes:
    """A tar of one file only root reads: a build log holds the build's commands, whose
    index settings (a URL with a password) no sandbox's agent may see."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def build_log(image: str, engine: docker.DockerClient | None = None) -> str | None:
    """The output of the build that made environment ``image`` (None: the image keeps none,
    as a base image or one built before logs were kept)."""
    engine = engine or client()
    container = engine.containers.create(image, command=["true"], labels=labels())
    try:
        chunks, _ = container.get_archive(BUILD_LOG)
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile(Path(BUILD_LOG).name)
            return member.read().decode("utf-8", "replace") if member else None
    except NotFound:
        return None
    finally:
        with contextlib.suppress(NotFound, APIError):
            container.remove(force=True)


def _clone_archive(repo: Path, commit: str) -> bytes:
    """A tar of ``repo/`` (a full clone, nothing checked out) owned by root.

    Only environment builds get a clone (version plugins read git metadata); the image keeps
    none of it. ``commit`` is only checked to exist; the build checks it out.
    """
    with tempfile.TemporaryDirectory(prefix="davinci-copy-") as scratch:
        clone = Path(scratch) / "repo"
        subprocess.run(["git", "clone", "-q", "--no-checkout", "--no-local", str(repo),
                        str(clone)], check=True, capture_output=True)
        found = subprocess.run(["git", "-C", str(clone), "cat-file", "-e", f"{commit}^{{commit}}"],
                               capture_output=True)
        if found.returncode != 0:
            raise SandboxError(f"commit {commit} is not in {repo.name}")
        def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            return info

        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(clone, arcname="repo", filter=owned)
        return archive.getvalue()


def environment_images(engine: docker.DockerClient | None = None) -> list[dict[str, str]]:
    """Every environment image on this engine: tag, size and creation time."""
    engine = engine or client()
    found = []
    for image in engine.images.list(filters={"label": f"{ENV_LABEL}=1"}):
        for tag in image.tags:
            found.append({"image": tag, "created": image.attrs.get("Created", ""),
                          "size_mb": f"{image.attrs.get('Size', 0) / 1e6:.0f}"})
    return found


def remove_environments(older_than_days: float, engine: docker.DockerClient | None = None
                        ) -> list[str]:
    """Remove environment images built more than ``older_than_days`` ago; their tags.

    An image a running sandbox uses stays (the engine refuses); it goes at a later gc.
    """
    engine = engine or client()
    cutoff = time.time() - older_than_days * 86400
    removed: list[str] = []
    for image in engine.images.list(filters={"label": f"{ENV_LABEL}=1"}):
        created = _created(image.attrs.get("Created", ""))
        if created is None or created > cutoff:
            continue
        try:
            engine.images.remove(image.id)
        except APIError:  # in use by a container
            continue
        removed.extend(image.tags or [image.short_id])
    return removed


def _created(stamp: str) -> float | None:
    """Docker's `Created` (RFC 3339 with nanoseconds) as a Unix time."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp)
    if match is None:
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(match.group(1) + zone).timestamp()


def _git(repo: Path, *args: str) -> bytes:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], check=True,
                              capture_output=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SandboxError(f"git {' '.join(args)} failed in {repo.name}: "
                           f"{exc.stderr.decode(errors='replace').strip()}") from exc
