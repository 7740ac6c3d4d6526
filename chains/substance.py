"""What in a change is substance: the one place that tells code from layout and prose.

Blame credits whoever last touched a line, whatever the touch was: a formatter run, a moved
block, a fixed typo in a comment. A `fixes` link must rest on lines that carry behaviour, so
mining asks three questions here:

- :func:`substantive_lines`: which lines of a file version are code (not blank, not a
  comment, not a docstring or other bare string, not an import);
- :func:`changes_code`: does a change to a file alter behaviour (for Python: its syntax tree
  with docstrings blanked; so comments, docstrings and layout are not code);
- :func:`format_only`: is a change layout alone (for Python: the same syntax tree), like a
  formatter's run, whose commits blame should look through;
- :func:`cosmetic`: does a change only rename, reword docstrings or re-lay out (the same tree
  with names and docstrings blanked), so the lines it touched still belong to whoever wrote
  them;

and :func:`never_blamed` names the files no fix is credited through (lock files, vendored and
generated code, configuration and data).
"""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath

PYTHON_SUFFIXES = (".py", ".pyi")
NOT_CODE_SUFFIXES = (".lock", ".toml", ".ini", ".cfg", ".yml", ".yaml", ".json", ".txt",
                     ".md", ".rst", ".in", ".csv", ".svg", ".html", ".css", ".xml", ".po",
                     ".pot", ".lock.json", ".map")
LOCK_NAMES = ("poetry.lock", "pipfile.lock", "package-lock.json", "yarn.lock", "uv.lock",
              "pnpm-lock.yaml", "cargo.lock", "composer.lock", "gemfile.lock")
VENDORED = re.compile(r"(^|/)(vendor|vendored|_vendor|third_party|thirdparty|node_modules)/")
GENERATED = re.compile(r"(_pb2(_grpc)?\.pyi?|\.min\.js|\.generated\.\w+)$|(^|/)generated/")
COMMENT = re.compile(r"^\s*(#|//|/\*|\*|--|;)")


def never_blamed(path: str) -> bool:
    """Files through which no `fixes` link is made: lock files, vendored and generated
    code, and configuration or data (a shared tox command is not a shared goal)."""
    lowered = path.lower()
    name = PurePosixPath(lowered).name
    return (name in LOCK_NAMES or lowered.endswith(NOT_CODE_SUFFIXES)
            or bool(VENDORED.search(lowered)) or bool(GENERATED.search(lowered)))


def substantive_lines(text: str, path: str) -> set[int] | None:
    """1-based numbers of the lines of ``text`` that are code; None when every non-blank
    line counts (a Python file that does not parse, a language not known here)."""
    lines = text.splitlines()
    if not path.endswith(PYTHON_SUFFIXES):
        return {n for n, line in enumerate(lines, 1) if line.strip() and not COMMENT.match(line)}
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    prose: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Expr | ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Expr) and not (isinstance(node.value, ast.Constant)
                                               and isinstance(node.value.value, str)):
            continue  # an expression statement that is not a bare string is code
        prose.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return {n for n, line in enumerate(lines, 1)
            if n not in prose and line.strip() and not line.lstrip().startswith("#")}


def changes_code(old: str | None, new: str | None, path: str) -> bool:
    """Whether changing ``old`` into ``new`` (None: absent) alters behaviour. Python files
    compare syntax trees with docstrings blanked (comments and layout are not in the tree);
    other files compare their lines that are not blank or comments. A file that does not
    parse counts as changed."""
    if old is None or new is None:
        return old != new
    if path.endswith(PYTHON_SUFFIXES):
        before, after = _tree(old, blank_strings=True), _tree(new, blank_strings=True)
        return before is None or after is None or before != after
    return _code_lines(old) != _code_lines(new)


def format_only(old: str | None, new: str | None, path: str) -> bool:
    """Whether ``old`` -> ``new`` is a change of layout alone: a Python file whose syntax
    tree (strings included) is the same. Nothing else is known to be format-only."""
    if old is None or new is None or old == new or not path.endswith(PYTHON_SUFFIXES):
        return False
    before = _tree(old, blank_strings=False)
    return before is not None and before == _tree(new, blank_strings=False)


def cosmetic(old: str | None, new: str | None, path: str) -> bool:
    """Whether ``old`` -> ``new`` changes no behaviour but names and prose: a Python file
    whose syntax tree, with every identifier and docstring blanked, is the same (a rename, a
    reformat, a reworded docstring). Blame looks through such a change: the lines it touched
    belong to whoever wrote them before."""
    if old is None or new is None or old == new or not path.endswith(PYTHON_SUFFIXES):
        return False
    before = _tree(old, blank_strings=True, blank_names=True)
    return before is not None and before == _tree(new, blank_strings=True, blank_names=True)


def _tree(text: str, blank_strings: bool, blank_names: bool = False) -> str | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    if blank_names:
        for node in ast.walk(tree):
            for field in ("id", "attr", "arg", "name", "asname", "module"):
                if isinstance(getattr(node, field, None), str):
                    setattr(node, field, "_")
            if isinstance(node, ast.Global | ast.Nonlocal):
                node.names = ["_"] * len(node.names)
    if blank_strings:  # docstrings and other bare strings: prose, not behaviour
        for node in ast.walk(tree):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                node.value.value = ""
    return ast.dump(tree, annotate_fields=False)


def _code_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and not COMMENT.match(line)]
