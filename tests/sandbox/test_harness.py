"""The hidden run's harness step on a real work tree: the reference's test files, helpers
and data in place of the agent's, byte for byte, and the agent's tree back afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sandbox.testinfra import BOOT, encode
from sandbox.testrun import _MODULES

BINARY = bytes(range(256)) * 4


def step(root: Path, request: dict[str, object]) -> dict[str, object]:
    """The step as the sandbox runs it: `python3 -I -c BOOT` in the work tree, our modules
    in the request (a `chains` package of the work tree is not imported in their place)."""
    done = subprocess.run([sys.executable, "-I", "-c", BOOT], cwd=root, capture_output=True,
                          input=json.dumps({**request, "modules": _MODULES}).encode(),
                          check=True)
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def tree(root: Path) -> dict[str, tuple[bytes, bool, bool]]:
    """path -> (content or link target, executable, link), .git left out."""
    found = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            path = Path(folder, name)
            link = path.is_symlink()
            content = os.readlink(path).encode() if link else path.read_bytes()
            found[str(path.relative_to(root))] = (content, not link and os.access(path, os.X_OK),
                                                  link)
    return found


def test_the_reference_harness_replaces_the_agent_s_and_the_agent_s_comes_back(
        tmp_path: Path) -> None:
    root = tmp_path / "work"
    files = {
        "calc/stats.py": b"def mean(values):\n    return 0\n",  # code: never touched
        "tests/__init__.py": b"import calc\ncalc.cheat = True\n",  # the agent's version
        "tests/test_stats.py": b"def test_mean():\n    assert True\n",  # as the reference
        "tests/helpers.py": b"def same(a, b):\n    return True\n",  # the agent's version
        "tests/new_helper.py": b"EVIL = 1\n",  # the reference has no such file
        "tests/data/blob.bin": b"agent",  # the reference's is binary
        "chains/paths.py": b"raise SystemExit('the work tree was imported')\n",
        "calc/__pycache__/stats.cpython-311.pyc": b"compiled from other code",
        "calc/legacy.pyc": b"compiled, its source gone",
    }
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    (root / "chains" / "__init__.py").write_text("")
    before = tree(root)
    reference = {
        "tests/__init__.py": encode(b""),
        "tests/test_stats.py": encode(files["tests/test_stats.py"]),
        "tests/helpers.py": encode(b"def same(a, b):\n    return a == b\n"),
        "tests/data/blob.bin": encode(BINARY),
        "tests/run.sh": encode(b"#!/bin/sh\necho ok\n", "100755"),
        "tests/data/latest": encode(b"blob.bin", "120000"),
        "tests/test_gone.py": None,
    }
    prepared = step(root, {"step": "prepare", "write": reference})
    assert "error" not in prepared, prepared
    during = tree(root)
    assert during["tests/__init__.py"] == (b"", False, False)
    assert during["tests/helpers.py"][0] == b"def same(a, b):\n    return a == b\n"
    assert during["tests/data/blob.bin"][0] == BINARY
    assert during["tests/run.sh"] == (b"#!/bin/sh\necho ok\n", True, False)
    assert during["tests/data/latest"] == (b"blob.bin", False, True)
    assert "tests/new_helper.py" not in during
    assert not [path for path in during if path.endswith(".pyc")]
    assert during["calc/stats.py"] == before["calc/stats.py"]
    # What is already the reference's is left as it is, and not counted as set aside.
    assert sorted(prepared["set_aside"]) == [  # type: ignore[call-overload]
        "calc/__pycache__/stats.cpython-311.pyc", "calc/legacy.pyc", "tests/__init__.py",
        "tests/data/blob.bin", "tests/helpers.py", "tests/new_helper.py"]
    assert "tests/test_stats.py" not in prepared["written"]  # type: ignore[operator]

    restored = step(root, {"step": "restore", "dir": prepared["dir"],
                           "written": prepared["written"]})
    assert restored["problems"] == []
    assert tree(root) == before
    assert not Path(str(prepared["dir"])).exists()
