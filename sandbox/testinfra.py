"""Test infrastructure: what can change how the hidden tests run, and putting it back.

One rule (:func:`is_test_infrastructure`) says which files of a work tree can change the
outcome of a pytest run without being the code under test: every `conftest.py`, the
configuration files pytest reads at the root, and what could shadow the runner or run at
interpreter start (`pytest.py` at the root, `sitecustomize.py`, `usercustomize.py`, `.pth`
files). Folders named like the runner's own packages are not in it: the runner imports its
packages before the work tree joins the path, and such a folder may be the very project
under test (pluggy, pytest).

This module is imported on the host and its source is also run inside the sandbox with
``python3 -I`` (standard library only, no imports of ours): :func:`prepare` sets the agent's
versions of those files aside and writes the reference versions and the hidden tests;
:func:`restore` reads the report and puts the agent's files back.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

NAMES = ("conftest.py", "sitecustomize.py", "usercustomize.py")
ROOT_NAMES = ("pytest.py", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini",
              "setup.cfg")
ROOT_CONFIGS = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
"""In the order pytest looks for its configuration."""
CONFIG_SECTIONS = {"pyproject.toml": "[tool.pytest.ini_options]", "tox.ini": "[pytest]",
                   "setup.cfg": "[tool:pytest]"}
SHIM = """import sys
root, args = sys.argv[1], sys.argv[2:]
import pytest  # from the installed packages: the work tree is not on the path yet
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
sys.exit(pytest.main(args))
"""
"""The runner: pytest and its plugins are imported before the work tree joins the path;
then the work tree (and its `src/`) comes first, and a package of it that the runner had
imported from the installed ones is imported again from the work tree by the tests."""


def is_test_infrastructure(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    if name in NAMES or name.endswith(".pth"):
        return True
    return len(parts) == 1 and name in ROOT_NAMES


def pytest_config(files: dict[str, str | None]) -> str | None:
    """The root configuration file pytest would read among ``files`` (path -> content)."""
    for name in ROOT_CONFIGS:
        content = files.get(name)
        if content is None:
            continue
        section = CONFIG_SECTIONS.get(name)
        if section is None or section in content:
            return name
    return None


def prepare(root: str, write: dict[str, str | None]) -> dict[str, object]:
    """Set aside every infrastructure file and every path of ``write``; write ``write``
    (None: leave absent); make a private folder for the report and the runner. What the
    agent's tree does not allow (a file where a folder must be, a full disk) is reported
    as ``error``, never raised: the run then counts as not run."""
    moved: list[str] = []
    written: list[str] = []
    hidden = ""
    try:
        hidden = tempfile.mkdtemp(prefix=".davinci-hidden-", dir=os.path.dirname(root))
        aside = os.path.join(hidden, "aside")
        present = set(_infrastructure(root))
        present |= {p for p in write if os.path.lexists(os.path.join(root, p))}
        for path in sorted(present):
            target = os.path.join(aside, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(os.path.join(root, path), target)
            moved.append(path)
        for path, content in sorted(write.items()):
            if content is None:
                continue
            target = os.path.join(root, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            written.append(path)
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(content)
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
            if os.path.lexists(target) and not os.path.isdir(target):
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


def _infrastructure(root: str) -> list[str]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not (folder == root and d == ".git")]
        for name in names:
            path = os.path.relpath(os.path.join(folder, name), root)
            if is_test_infrastructure(path):
                found.append(path)
        for name in dirs:  # a folder linked from elsewhere could bring a conftest.py along
            target = os.path.join(folder, name)
            if os.path.islink(target) and not _inside(os.path.realpath(target), root):
                found.append(os.path.relpath(target, root))
    return found


def _inside(path: str, root: str) -> bool:
    real = os.path.realpath(root)
    return path == real or path.startswith(real + os.sep)


def main() -> None:
    request = json.load(sys.stdin)
    root = os.getcwd()
    if request["step"] == "prepare":
        answer = prepare(root, request["write"])
    else:
        answer = restore(root, request["dir"], request["written"])
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
