"""What a path in a repository is: test code or prose. One rule for mining and rollouts alike
(a rollout's test patch is exactly what mining counts as a PR's tests, and the hidden run
takes every such file from the reference).

This module also runs inside the sandbox (sandbox.testinfra): standard library only."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

TEST_DIRS = frozenset({"test", "tests", "testing", "_tests", "__tests__", "spec"})
"""Directories whose files are all test code (trio keeps its helpers, `tutil.py`, in
`_tests/`)."""
_TEST_NAME = re.compile(r"^(test_.*\.py|.*_tests?\.py|tests\.py|conftest\.py|.*_spec\.rb"
                        r"|.*\.(test|spec)\.[jt]sx?|.*_test\.go)$")
DOC_DIRS = frozenset({"docs", "doc", "documentation"})
DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")
DOC_NAMES = frozenset({"readme", "changes", "changelog", "history", "news", "authors",
                       "contributing", "license", "copying"})


def is_test_path(path: str) -> bool:
    """Test code: under a test directory, or named like a test module (`test_*.py`,
    `*_test.py`, `tests.py`, `conftest.py`, and the usual JavaScript, Ruby and Go names)."""
    parts = PurePosixPath(path.lower()).parts
    if not parts:
        return False
    return any(part in TEST_DIRS for part in parts[:-1]) or bool(_TEST_NAME.match(parts[-1]))


def is_doc_path(path: str) -> bool:
    """Prose, not behaviour: a fix there (a typo) does not repair an earlier PR's work."""
    parts = PurePosixPath(path.lower()).parts
    if not parts:
        return False
    name = parts[-1]
    if name.startswith("requirements"):
        return False  # dependency pins are behaviour
    return (name.endswith(DOC_SUFFIXES) or name.split(".", 1)[0] in DOC_NAMES
            or any(part in DOC_DIRS for part in parts[:-1]))
