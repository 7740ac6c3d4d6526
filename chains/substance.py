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
- :func:`cosmetic`: does a change only rename, reword docstrings, add type hints or re-lay
  out (the same tree with names, docstrings and annotations blanked), so the lines it
  touched still belong to whoever wrote them;

:func:`shape` is one line with its names blanked, so a line that was only renamed or moved
by a commit is told from one it wrote; :func:`touched`, :func:`inherited` and
:func:`put_back` say which tokens of a line a change replaced, whether an earlier version of
the line already held them and whether the change undoes an earlier edit (a commit that
edited a line in passing did not write what a later fix of it changes); and
:func:`never_blamed` names the files no fix is credited through (lock files, vendored and
generated code, configuration and data); :func:`names` and :func:`brought` are the names a
piece of code uses and those a change brought in.
"""

from __future__ import annotations

import ast
import itertools
import keyword
import re
from collections import deque
from collections.abc import Iterator, Sequence
from difflib import SequenceMatcher
from pathlib import PurePosixPath

PYTHON_SUFFIXES = (".py", ".pyi")
NOT_CODE_SUFFIXES = (".lock", ".toml", ".ini", ".cfg", ".yml", ".yaml", ".json", ".txt",
                     ".md", ".rst", ".in", ".csv", ".svg", ".html", ".css", ".xml", ".po",
                     ".pot", ".lock.json", ".map")
LOCK_NAMES = ("poetry.lock", "pipfile.lock", "package-lock.json", "yarn.lock", "uv.lock",
              "pnpm-lock.yaml", "cargo.lock", "composer.lock", "gemfile.lock")
PACKAGING_NAMES = ("setup.py", "manifest.in")
"""Packaging configuration written as code, like `pyproject.toml` (dot-files are
configuration too)."""
VENDORED = re.compile(r"(^|/)(vendor|vendored|_vendor|third_party|thirdparty|node_modules)/")
VERSION_NAMES = frozenset({"__version__", "__version_info__", "version", "version_info",
                           "VERSION", "__build__"})
"""Module-level names a release sets: assigning them a literal is bookkeeping, not code."""
GENERATED = re.compile(r"(_pb2(_grpc)?\.pyi?|\.min\.js|\.generated\.\w+)$|(^|/)generated/")
COMMENT = re.compile(r"^\s*(#|//|/\*|\*|--|;)")
NAME_FIELDS = ("id", "attr", "arg", "name", "asname", "module")
"""The fields of syntax nodes that hold identifiers."""
TYPING_MODULES = frozenset({"__future__", "typing", "typing_extensions", "collections.abc"})
"""Modules a type-hinting change imports from for its annotations."""
_CHILD = object()
"""Marks a child node's place in :func:`_nodes` (the child follows in breadth-first order)."""


_TOKEN = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|\S")
_DOTTED = re.compile(r"_(?: \. _)+")


def shape(line: str) -> str:
    """The line's tokens with every name (but keywords) and dotted name as `_`:
    `old_cls.x = f(y)` and `self._cls.x = g(y)` have one shape, `return x` and `yield x`
    do not."""
    names = " ".join("_" if (token[0].isalpha() or token[0] == "_")
                     and token not in keyword.kwlist else token
                     for token in _TOKEN.findall(line))
    return _DOTTED.sub("_", names)


def traced(line: str, origin: str) -> bool:
    """Whether ``origin``, the line blame credits for ``line``, can be where it came from.
    Blame that looks through a commit guesses the origins of the lines that commit wrote,
    and takes a neighbour when none is alike: `past = 'fazem {0}'`, moved into a new class,
    was credited to the `past = 'nakaraang {0}'` of the class beside it. A line is traced
    when the tokens of one are all among the other's, once names are blanked or once
    keywords and symbols are left out (quotes aside): the same code re-laid out (a call split
    over lines, or lines joined), renamed, or with its keywords and symbols rewritten
    (`x == None` made `x is None`, `elif` made `if`, a lambda's value now returned). Or
    when the two share half the names (:func:`names`) of the one with fewer and, if both
    hold strings, one alike: code that type hints were added to."""
    mine, theirs = _quoted(tokens(line)), _quoted(tokens(origin))
    if _among(set(shape(" ".join(mine)).split()), set(shape(" ".join(theirs)).split())) \
            or _among(_words(mine), _words(theirs)):
        return True
    named, known = names([line]), names([origin])
    shared = named & known
    if not shared or 2 * len(shared) < min(len(named), len(known)):
        return False
    strings, others = _strings(mine), _strings(theirs)
    return not strings or not others or bool(strings & others) or SequenceMatcher(
        None, " ".join(sorted(strings)), " ".join(sorted(others)),
        autojunk=False).ratio() >= ALIKE_STRINGS


ALIKE_STRINGS = 0.6
"""How alike (difflib's ratio) the strings of a line and of the origin blame gives it must
be, when none is the same, for the origin to be believed."""


def _strings(found: list[str]) -> set[str]:
    return {token[1:-1] for token in found if token[0] == '"'}


def _quoted(found: list[str]) -> list[str]:
    return [f'"{token[1:-1]}"' if token[0] == "'" else token for token in found]


def _words(found: list[str]) -> set[str]:
    """The names (not keywords) and literals among ``found``."""
    return {token for token in found
            if (token[0].isalnum() or token[0] in "_\"") and token not in keyword.kwlist}


def _among(one: set[str], other: set[str]) -> bool:
    return bool(one) and bool(other) and (one <= other or other <= one)


def tokens(line: str) -> list[str]:
    """The tokens of a line's code (names, numbers, whole strings, single symbols)."""
    return _TOKEN.findall(code_of(line))


def touched(old: Sequence[str], new: Sequence[str] | None) -> set[int]:
    """Positions of ``old``'s tokens that a change to ``new`` replaced or removed (every one
    when the line went, ``new`` None); an insertion alone touches none."""
    if new is None:
        return set(range(len(old)))
    found: set[int] = set()
    for tag, i1, i2, _, _ in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag in ("replace", "delete"):
            found.update(range(i1, i2))
    return found


def inherited(line: Sequence[str], before: Sequence[str], positions: set[int]) -> bool:
    """Whether the tokens of ``line`` at ``positions`` were all in ``before``, in order: the
    change that made ``line`` out of ``before`` did not write them."""
    same: set[int] = set()
    for block in SequenceMatcher(None, line, before, autojunk=False).get_matching_blocks():
        same.update(range(block.a, block.a + block.size))
    return positions <= same


def put_back(line: Sequence[str], before: Sequence[str], after: Sequence[str]) -> bool:
    """Whether ``after`` puts back a word (a name, number or string) of ``before`` that
    ``line`` lost: the change from ``line`` to ``after`` undoes part of the edit that made
    ``line`` out of ``before``."""
    return bool(_new_words(line, before) & _new_words(line, after))


def _new_words(old: Sequence[str], new: Sequence[str]) -> set[str]:
    """The words of ``new`` that a change from ``old`` wrote."""
    found: set[str] = set()
    for tag, _, _, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag in ("replace", "insert"):
            found.update(word for word in new[j1:j2] if word[0].isalnum() or word[0] in "_'\"")
    return found


def code_of(line: str) -> str:
    """A line's code: its trailing comment (a `#` outside quotes) and its spacing dropped."""
    quote = ""
    for at, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#":
            line = line[:at]
            break
    return " ".join(line.split())


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")
_COMMON_NAMES = frozenset({*keyword.kwlist, "self", "None", "True", "False", "print", "isinstance",
                           "super", "args", "kwargs", "list", "dict", "tuple", "type", "object"})


def names(lines: Iterator[str] | Sequence[str]) -> set[str]:
    """The names of four or more characters the code of ``lines`` uses (comments, keywords
    and the commonest builtins aside)."""
    return {name for line in lines for name in _NAME.findall(code_of(line))
            if name not in _COMMON_NAMES}


def brought(removed: Sequence[str], added: Sequence[str]) -> set[str]:
    """The names a change brought into the code: used by lines it added, by none it removed."""
    return names(added) - names(removed)


def never_blamed(path: str) -> bool:
    """Files through which no `fixes` link is made: lock files, vendored and generated
    code, and configuration or data, packaging and dot-files included (a shared tox command
    is not a shared goal)."""
    lowered = path.lower()
    name = PurePosixPath(lowered).name
    return (name in LOCK_NAMES or name in PACKAGING_NAMES or name.startswith(".")
            or lowered.endswith(NOT_CODE_SUFFIXES)
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
    # A release's version, set at the top of a module; imports and bare strings anywhere.
    skipped = [statement for statement in tree.body if _sets_version(statement)]
    skipped += [node for node in ast.walk(tree)
                if isinstance(node, ast.stmt) and _import_or_prose(node)]
    prose = {n for node in skipped
             for n in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
    return {n for n, line in enumerate(lines, 1)
            if n not in prose and line.strip() and not line.lstrip().startswith("#")}


def _import_or_prose(node: ast.stmt) -> bool:
    """An import, or a bare string (a docstring): an expression statement that is not a
    bare string is code."""
    return isinstance(node, ast.Import | ast.ImportFrom) or (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str))


def _sets_version(node: ast.stmt) -> bool:
    """`__version__ = "1.2"`, `VERSION = (1, 2, 0)`, `__build__ = 0x010200`: a literal given
    to one of VERSION_NAMES."""
    if isinstance(node, ast.Assign):
        targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets, value = [node.target], node.value
    else:
        return False
    try:
        ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return all(isinstance(t, ast.Name) and t.id in VERSION_NAMES for t in targets)


def changes_code(old: str | None, new: str | None, path: str) -> bool:
    """Whether changing ``old`` into ``new`` (None: absent) alters behaviour. Python files
    compare syntax trees with docstrings blanked (comments and layout are not in the tree);
    other files compare their lines that are not blank or comments. A file that does not
    parse counts as changed."""
    if old is None or new is None:
        return old != new
    if path.endswith(PYTHON_SUFFIXES):
        return _same_tree(old, new, blank_strings=True) is not True
    return _code_lines(old) != _code_lines(new)


def format_only(old: str | None, new: str | None, path: str) -> bool:
    """Whether ``old`` -> ``new`` is a change of layout alone: a Python file whose syntax
    tree (strings included) is the same. Nothing else is known to be format-only."""
    if old is None or new is None or old == new or not path.endswith(PYTHON_SUFFIXES):
        return False
    return _same_tree(old, new, blank_strings=False) is True


def cosmetic(old: str | None, new: str | None, path: str, hints: bool = True) -> bool:
    """Whether ``old`` -> ``new`` changes no behaviour but names, prose and type hints: a
    Python file whose syntax tree, with every identifier and docstring blanked, without
    annotations (of parameters, returns and assigned variables) or typing imports, and with
    `else` after a returning branch flattened, is the same (a rename, a reformat, a reworded
    docstring, type hints added, a linter's clean-up; with ``hints`` false, annotations and
    `else` count as they are). Blame looks through such a change: the lines it touched
    belong to whoever wrote them before."""
    if old is None or new is None or old == new or not path.endswith(PYTHON_SUFFIXES):
        return False
    return _same_tree(old, new, blank_strings=True, blank_names=True, blank_types=hints) is True


def hints_only(old: str | None, new: str | None, path: str) -> bool:
    """Whether ``old`` -> ``new`` changes type hints and nothing else that :func:`cosmetic`
    would not see: a fix of annotations, whose lines belong to whoever wrote the hints."""
    if old is None or new is None or old == new or not path.endswith(PYTHON_SUFFIXES):
        return False
    return _same_tree(old, new, blank_strings=True, blank_types=True) is True \
        and _same_tree(old, new, blank_strings=True) is not True


def _same_tree(old: str, new: str, blank_strings: bool, blank_names: bool = False,
               blank_types: bool = False) -> bool | None:
    """Whether the two texts parse to the same syntax tree (None: one does not parse),
    compared node by node and left at the first difference. ``blank_strings``: docstrings
    and other bare strings (prose, not behaviour) count as empty; ``blank_names``: every
    identifier counts as `_`; ``blank_types``: type hints are not there (:func:`_hints`)."""
    before = _parsed(old)
    after = _parsed(new) if before is not None else None
    if before is None or after is None:
        return None
    return all(a == b for a, b in itertools.zip_longest(
        _nodes(before, blank_strings, blank_names, blank_types),
        _nodes(after, blank_strings, blank_names, blank_types)))


def _hints(tree: ast.AST) -> set[int]:
    """The nodes that only hint types: annotations of parameters and returns, the annotation
    of a variable assigned a value, imports from typing modules and `if TYPE_CHECKING:`
    blocks (a bare `x: int` declares a field in a dataclass, so it stays)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.add(id(node.annotation))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            found.add(id(node.returns))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            found.add(id(node.annotation))
        elif _typing_only(node):
            found.add(id(node))
    return found


_LEAVES = (ast.Return, ast.Raise, ast.Continue, ast.Break)


def _flatten_else(tree: ast.AST) -> None:
    """Rewrite, in place, every `if` whose branch always leaves (return, raise, continue,
    break) so that its `else`/`elif` follows it: `if a: return x` / `else: return y` and
    `if a: return x` / `return y` are the same program, the clean-up a linter asks for."""
    for node in reversed(list(ast.walk(tree))):  # inner blocks first, each node once
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list) or not statements \
                    or not isinstance(statements[0], ast.stmt):
                continue
            flat: list[ast.stmt] = []
            todo = list(statements)
            while todo:
                statement = todo.pop(0)
                flat.append(statement)
                if isinstance(statement, ast.If) and statement.orelse \
                        and _leaves(statement.body[-1]):
                    todo[:0] = statement.orelse
                    statement.orelse = []
            setattr(node, field, flat)


def _leaves(statement: ast.stmt) -> bool:
    """Whether control never goes past ``statement``."""
    if isinstance(statement, ast.If):
        return bool(statement.orelse) and _leaves(statement.body[-1]) \
            and _leaves(statement.orelse[-1])
    return isinstance(statement, _LEAVES)


def _typing_only(node: ast.AST) -> bool:
    """An import from typing modules, or an `if TYPE_CHECKING:` block without `else`."""
    if isinstance(node, ast.ImportFrom):
        return node.module in TYPING_MODULES
    if isinstance(node, ast.Import):
        return all(alias.name in TYPING_MODULES for alias in node.names)
    return isinstance(node, ast.If) and not node.orelse and "TYPE_CHECKING" in {
        getattr(node.test, "id", None), getattr(node.test, "attr", None)}


def _parsed(text: str) -> ast.AST | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _nodes(tree: ast.AST, blank_strings: bool, blank_names: bool, blank_types: bool = False
           ) -> Iterator[tuple[object, ...]]:
    """The tree as a sequence, breadth first: each node's type and, per field, its value
    (as `repr`, so 1, 1.0 and True differ), a mark for a child node, or a list's length and
    items. Two trees are equal exactly when their sequences are (what `ast.dump` would say,
    without building the whole text). Blanking happens on the way: a bare string is seen
    through its statement, which comes first; with ``blank_types``, a type hint is left out
    with its subtree, an annotated assignment reads as a plain one, and an `else` after a
    branch that leaves is flattened (:func:`_flatten_else`)."""
    prose: set[int] = set()
    if blank_types:
        _flatten_else(tree)
    hints = _hints(tree) if blank_types else set()
    todo: deque[ast.AST] = deque([tree])
    while todo:
        node = todo.popleft()
        todo.extend(child for child in ast.iter_child_nodes(node) if id(child) not in hints)
        if blank_strings and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            prose.add(id(node.value))
        if isinstance(node, ast.AnnAssign) and id(node.annotation) in hints:
            yield ("Assign", 1, _CHILD, _CHILD, repr(None))  # `x: T = v` reads as `x = v`
            continue
        slots: list[object] = [type(node).__name__]
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.AST):
                slots.append(repr(None) if id(value) in hints else _CHILD)
            elif isinstance(value, list):
                value = [v for v in value if id(v) not in hints]
                slots.append(len(value))
                slots.extend(_CHILD if isinstance(v, ast.AST) else
                             "'_'" if blank_names and isinstance(node, ast.Global | ast.Nonlocal)
                             else repr(v) for v in value)
            elif blank_names and field in NAME_FIELDS and isinstance(value, str):
                slots.append("'_'")
            elif field == "value" and id(node) in prose:
                slots.append("''")
            else:
                slots.append(repr(value))
        yield tuple(slots)


def _code_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and not COMMENT.match(line)]
