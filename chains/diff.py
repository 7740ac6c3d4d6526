"""The one reader of unified diffs: `git diff` output of any context size, and the per-file
patches GitHub's API returns (hunks without a file header).

Hunk bodies are read by the counts their headers give, never by what a line looks like, so
a removed line that reads "-- x" or an added one that reads "++ y" is content, not a header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from chains.model import FileChange, Hunk, LineRange

_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Hunks:
    """What one file's hunks change: line numbers on each side, and the lines themselves
    when asked for."""

    old_ranges: tuple[LineRange, ...] = ()
    """Lines of the old version deleted or modified."""
    new_ranges: tuple[LineRange, ...] = ()
    """Lines of the new version added or modified."""
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    spans: tuple[Hunk, ...] = ()
    """Each hunk's extent on both sides."""


def read_hunks(lines: list[str], start: int = 0, with_lines: bool = False) -> tuple[Hunks, int]:
    """The hunks from ``lines[start]`` on, and the index of the first line after them."""
    old: list[int] = []
    new: list[int] = []
    removed: list[str] = []
    added: list[str] = []
    spans: list[Hunk] = []
    i = start
    while i < len(lines):
        header = _HUNK.match(lines[i])
        if header is None:
            break
        old_no, old_left = int(header.group(1)), int(header.group(2) or 1)
        new_no, new_left = int(header.group(3)), int(header.group(4) or 1)
        spans.append(Hunk(LineRange(old_no, old_no + old_left - 1) if old_left else None,
                          LineRange(new_no, new_no + new_left - 1) if new_left else None))
        i += 1
        while (old_left or new_left) and i < len(lines):
            line = lines[i]
            mark = line[:1]
            if mark == "-" and old_left:
                old.append(old_no)
                if with_lines:
                    removed.append(line[1:])
                old_no, old_left = old_no + 1, old_left - 1
            elif mark == "+" and new_left:
                new.append(new_no)
                if with_lines:
                    added.append(line[1:])
                new_no, new_left = new_no + 1, new_left - 1
            elif mark in (" ", "") and old_left and new_left:
                old_no, new_no = old_no + 1, new_no + 1
                old_left, new_left = old_left - 1, new_left - 1
            elif mark != "\\":  # "\ No newline at end of file" counts on neither side
                break  # a truncated hunk: keep what was read
            i += 1
        while i < len(lines) and lines[i].startswith("\\"):
            i += 1
    return Hunks(ranges(old), ranges(new), tuple(removed), tuple(added), tuple(spans)), i


def patch_hunks(patch: str, with_lines: bool = False) -> Hunks:
    """One file's hunks as GitHub's API gives them (no file header)."""
    lines = patch.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("@@")), len(lines))
    return read_hunks(lines, start, with_lines)[0]


def parse_diff(diff: str, with_lines: bool = False) -> Iterator[FileChange]:
    """The files of a `git diff` (any `-U`, renames and binaries included), in order."""
    lines = diff.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("diff --git "):
            i += 1
            continue
        change, i = _file(lines, i, with_lines)
        yield change


def _file(lines: list[str], i: int, with_lines: bool) -> tuple[FileChange, int]:
    old_path, new_path = _header_paths(lines[i][len("diff --git "):])
    status, binary = "modified", False
    i += 1
    while i < len(lines) and not lines[i].startswith(("@@", "diff --git ")):
        line = lines[i]
        if line.startswith("new file mode"):
            status = "added"
        elif line.startswith("deleted file mode"):
            status = "removed"
        elif line.startswith("rename from "):
            old_path, status = unquote(line[len("rename from "):]), "renamed"
        elif line.startswith("rename to "):
            new_path = unquote(line[len("rename to "):])
        elif line.startswith(("Binary files ", "GIT binary patch")):
            binary = True
        i += 1
    hunks, i = read_hunks(lines, i, with_lines)
    return FileChange(
        path=new_path, status=status, old_path=old_path if old_path != new_path else None,
        binary=binary, additions=_count(hunks.new_ranges), deletions=_count(hunks.old_ranges),
        old_ranges=hunks.old_ranges, new_ranges=hunks.new_ranges,
        added_lines=hunks.added, removed_lines=hunks.removed, hunks=hunks.spans), i


def _header_paths(header: str) -> tuple[str, str]:
    """The two paths of `a/<old> b/<new>`, either of them C-quoted by git when it holds a
    quote, a backslash or a control character."""
    if header.startswith('"'):
        end = _closing_quote(header)
        old, new = unquote(header[:end + 1]), header[end + 2:]
        new = unquote(new)
    elif header.endswith('"'):
        start = header.rfind(' "b/')
        old, new = header[:start], unquote(header[start + 1:])
    else:
        half = (len(header) - 1) // 2  # "a/P b/P": the same path twice
        if header[:half][2:] == header[half + 1:][2:]:
            old, new = header[:half], header[half + 1:]
        else:
            old, _, new = header.rpartition(" b/")
            new = "b/" + new
    return old[2:] if old.startswith("a/") else old, new[2:] if new.startswith("b/") else new


def _closing_quote(text: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return len(text) - 1


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def unquote(text: str) -> str:
    """A path as git prints it: C-quoted ("tab\\there.py", octal bytes) or as it is."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text
    out = bytearray()
    body, i = text[1:-1], 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            code = body[i + 1]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                i += 2
                continue
            if body[i + 1:i + 4].isdigit():
                out.append(int(body[i + 1:i + 4], 8) & 0xFF)
                i += 4
                continue
        out += char.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "replace")


def ranges(numbers: list[int]) -> tuple[LineRange, ...]:
    """Ascending line numbers as ranges; neighbours join."""
    result: list[LineRange] = []
    for number in numbers:
        if result and result[-1].end + 1 >= number:
            result[-1] = LineRange(result[-1].start, max(number, result[-1].end))
        else:
            result.append(LineRange(number, number))
    return tuple(result)


def _count(spans: tuple[LineRange, ...]) -> int:
    return sum(r.end - r.start + 1 for r in spans)
