"""The test harness: what the hidden run takes from the reference, and putting it back.

Two rules say which files of a work tree can change the outcome of the hidden tests without
being the code under test. :func:`is_test_infrastructure`: every `conftest.py`, the
configuration files pytest reads at the root, and what could shadow the runner or run at
interpreter start (`pytest.py` at the root, `sitecustomize.py`, `usercustomize.py`, `.pth`
files). :func:`is_harness`: that, and every test file by the project's one test-file rule
(`chains.paths.is_test_path`): a test module's `__init__.py`, its helpers and data files are
what the hidden tests import and read. Folders named like the runner's own packages are not
in it: the runner imports its packages before the work tree joins the path, and such a
folder may be the very project under test (pluggy, pytest).

This module is imported on the host, and its source and that of `chains.paths` (standard
library only) are also run inside the sandbox with ``python3 -I`` (:data:`BOOT`):
:func:`prepare` sets aside the agent's harness files that differ from the reference (and
those the reference does not have) and writes the reference's; :func:`restore` reads the
report and puts the agent's files back.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import textwrap

from chains.paths import is_test_path

NAMES = ("conftest.py", "sitecustomize.py", "usercustomize.py")
ROOT_NAMES = ("pytest.py", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini",
              "setup.cfg")
ROOT_CONFIGS = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
"""In the order pytest looks for its configuration."""
CONFIG_SECTIONS = {"pyproject.toml": "[tool.pytest.ini_options]", "tox.ini": "[pytest]",
                   "setup.cfg": "[tool:pytest]"}
_SHIM_BODY = """from os import _exit  # taken before any code of the work tree can replace it
root, limit, args = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
import signal
import pytest  # from the installed packages: the work tree is not on the path yet
class TestRanTooLong(BaseException):  # not an Exception: a test's `except Exception` goes on
    pass
def expired(signum, frame):
    raise TestRanTooLong(f"the test ran past {limit:g} s and was stopped there, so that the "
                         "other tests still run")
def limited():
    try:
        previous = signal.signal(signal.SIGALRM, expired)
    except ValueError:  # not the main thread: no limit
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
class Watchdog:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        yield from limited()
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        yield from limited()
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item, nextitem):
        yield from limited()
try:
    from importlib.metadata import entry_points
    try:
        plugins = entry_points(group="pytest11")
    except TypeError:
        plugins = entry_points().get("pytest11", [])
    for plugin in plugins:
        try:
            plugin.load()
        except Exception:
            pass
except ImportError:
    pass
import os
tree = [root] + [os.path.join(root, "src")] * os.path.isdir(os.path.join(root, "src"))
sys.path[:0] = tree
# A package of the work tree that the runner imported from the installed ones on its way
# (`packaging`, `pluggy`: pytest needs them) is the project under test: its tests import
# the work tree's. The runner keeps the modules it holds.
own = set()
for folder in tree:
    for name in os.listdir(folder):
        stem = name[:-3] if name.endswith(".py") else name
        if stem.isidentifier() and (name.endswith(".py") or os.path.isfile(
                os.path.join(folder, name, "__init__.py"))):
            own.add(stem)
own -= {"pytest", "_pytest", "py", "conftest", "sitecustomize", "usercustomize"}
for module in list(sys.modules):
    found = getattr(sys.modules[module], "__file__", None) or ""
    if module.split(".")[0] in own and not os.path.realpath(found).startswith(root + os.sep):
        del sys.modules[module]
code = int(pytest.main(args, plugins=[Watchdog()]))
for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
    try:
        stream.flush()
    except Exception:
        pass
_exit(code)
"""
SHIM = ("import sys\n"
        "# A child process multiprocessing starts with `spawn` or `forkserver` imports this file\n"
        "# as `__mp_main__` (with the runner's argv): it must not run the tests again.\n"
        "if __name__ == '__main__':\n" + textwrap.indent(_SHIM_BODY, "    "))
"""The runner: pytest and its plugins are imported before the work tree joins the path;
then the work tree (and its `src/`) comes first, and a package of it that the runner had
imported from the installed ones is imported again from the work tree by the tests. Once
pytest has written its report the process ends at once (`os._exit`): no exit handler,
finalizer or `__del__` of the code under test runs after the report is written.

Each phase of a test (set-up, call, tear-down) may take ``limit`` seconds (the second
argument); past that the test fails there (`TestRanTooLong`, raised from SIGALRM) and the
run goes on. One test that hangs (a server fixture that never answers) would otherwise take
the whole run past its time limit, and every other test's outcome with it."""


BOOT = """import json, sys, types
request = json.loads(sys.stdin.buffer.read())
for name, source in request.pop("modules"):
    module = types.ModuleType(name)
    parent, _, child = name.rpartition(".")
    if parent:
        package = sys.modules.setdefault(parent, types.ModuleType(parent))
        package.__path__ = []
        setattr(package, child, module)
    sys.modules[name] = module
    exec(compile(source, name.replace(".", "/") + ".py", "exec"), module.__dict__)
sys.stdout.write(json.dumps(sys.modules["sandbox.testinfra"].answer(request)))
"""
"""The hidden run's helper in the sandbox: our modules come with the request, so nothing of
the work tree is imported in their place."""


def is_test_infrastructure(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    if name in NAMES or name.endswith(".pth"):
        return True
    return len(parts) == 1 and name in ROOT_NAMES


def is_harness(path: str) -> bool:
    """A file the hidden run takes from the reference, whatever the agent made of it."""
    return is_test_infrastructure(path) or is_test_path(path)


def is_bytecode(path: str) -> bool:
    """Compiled Python, set aside for the hidden run: the tests run the sources the record
    keeps, not code compiled from other sources (Python would load a `.pyc` whose recorded
    size and time match the source, or one with no source at all)."""
    return path.endswith((".pyc", ".pyo"))


def pytest_config(files: dict[str, bytes | None]) -> str | None:
    """The root configuration file pytest would read among ``files`` (path -> content)."""
    for name in ROOT_CONFIGS:
        content = files.get(name)
        if content is None:
            continue
        section = CONFIG_SECTIONS.get(name)
        if section is None or section.encode() in content:
            return name
    return None


def encode(content: bytes | None, mode: str = "100644") -> dict[str, object] | None:
    """A file of the reference as :func:`prepare` takes it (None: absent there). ``mode``
    is git's: 100755 an executable, 120000 a symbolic link whose target is ``content``."""
    if content is None:
        return None
    return {"data": base64.b64encode(content).decode("ascii"), "mode": mode}


def prepare(root: str, write: dict[str, dict[str, object] | None]) -> dict[str, object]:
    """Put the harness in the reference state: ``write`` holds the reference's files
    (:func:`encode`; None: absent there). The agent's harness files and its files at those
    paths are set aside unless they are the reference's already, and so is every compiled
    file (:func:`is_bytecode`); the reference's are written; a private folder is made for
    the report and the runner. What the agent's tree
    does not allow (a file where a folder must be, a full disk) is reported as ``error``,
    never raised: the run then counts as not run."""
    moved: list[str] = []
    written: list[str] = []
    hidden = ""
    try:
        hidden = tempfile.mkdtemp(prefix=".davinci-hidden-", dir=os.path.dirname(root))
        aside = os.path.join(hidden, "aside")
        wanted = {path: _decoded(item) for path, item in write.items()}
        present = set(_harness(root))
        present |= {p for p in write if os.path.lexists(os.path.join(root, p))}
        for path in sorted(present):
            if _already(os.path.join(root, path), wanted.get(path)):
                del wanted[path]
                continue
            target = os.path.join(aside, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(os.path.join(root, path), target)
            moved.append(path)
        for path, item in sorted(wanted.items()):
            if item is None:
                continue
            content, mode = item
            target = os.path.join(root, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            written.append(path)
            if mode == "120000":
                os.symlink(content.decode("utf-8", "surrogateescape"), target)
                continue
            with open(target, "wb") as handle:
                handle.write(content)
            if mode == "100755":
                os.chmod(target, 0o755)  # noqa: S103 - git's mode for an executable
        for name, text in (("run.py", SHIM), ("pytest.ini", "[pytest]\n")):
            with open(os.path.join(hidden, name), "w", encoding="utf-8") as handle:
                handle.write(text)
    except OSError as exc:
        return {"dir": hidden, "set_aside": moved, "written": written, "error": str(exc)}
    return {"dir": hidden, "set_aside": moved, "written": written}


def restore(root: str, hidden: str, written: list[str]) -> dict[str, object]:
    """The report, then the agent's files back where they were (as far as its tree lets)."""
    report = os.path.join(hidden, "report.xml")
    text = None
    if os.path.isfile(report):
        with open(report, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    problems = []
    for path in written:
        target = os.path.join(root, path)
        try:
            if os.path.islink(target) or os.path.isfile(target):
                os.remove(target)
        except OSError as exc:
            problems.append(str(exc))
    aside = os.path.join(hidden, "aside")
    for folder, _, names in os.walk(aside):
        for name in names:
            source = os.path.join(folder, name)
            target = os.path.join(root, os.path.relpath(source, aside))
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                os.replace(source, target)
            except OSError as exc:
                problems.append(str(exc))
    shutil.rmtree(hidden, ignore_errors=True)
    return {"report": text, "problems": problems}


def _decoded(item: dict[str, object] | None) -> tuple[bytes, str] | None:
    if item is None:
        return None
    return base64.b64decode(str(item["data"])), str(item.get("mode", "100644"))


def _already(path: str, item: tuple[bytes, str] | None) -> bool:
    """Whether the file at ``path`` is the reference's ``item`` as it is (mode included)."""
    if item is None:
        return False
    content, mode = item
    if mode == "120000":
        return os.path.islink(path) and os.readlink(path).encode(
            "utf-8", "surrogateescape") == content
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    if (mode == "100755") != bool(os.stat(path).st_mode & 0o100):
        return False
    if os.path.getsize(path) != len(content):
        return False
    with open(path, "rb") as handle:
        return handle.read() == content


def _harness(root: str) -> list[str]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not (folder == root and d == ".git")]
        for name in names:
            path = os.path.relpath(os.path.join(folder, name), root)
            if is_harness(path) or is_bytecode(path):
                found.append(path)
        for name in dirs:  # a folder linked from elsewhere could bring a conftest.py along
            target = os.path.join(folder, name)
            if os.path.islink(target) and not _inside(os.path.realpath(target), root):
                found.append(os.path.relpath(target, root))
    return found


def _inside(path: str, root: str) -> bool:
    real = os.path.realpath(root)
    return path == real or path.startswith(real + os.sep)


def answer(request: dict[str, object]) -> dict[str, object]:
    """One step of the hidden run, in the work tree (the current folder)."""
    root = os.getcwd()
    if request["step"] == "prepare":
        return prepare(root, request["write"])  # type: ignore[arg-type]
    return restore(root, str(request["dir"]), list(request["written"]))  # type: ignore[call-overload]
