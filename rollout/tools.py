"""The agent's tools: OpenAI function schemas and their execution in the sandbox.

Whatever the arguments, a call ends as an observation string: wrong or hostile input
(unknown tool, bad JSON, a path outside the work tree) is reported back, never raised.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.base import PathOutsideWorkTree, Sandbox, SandboxError

SUBMIT = "submit"


def _function(name: str, description: str, properties: dict[str, Any],
              required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False}}}


_STR = {"type": "string"}
TOOLS: list[dict[str, Any]] = [
    _function("bash", "Run a shell command in the repository's work tree and return its "
              "exit code and output.", {"command": _STR}, ["command"]),
    _function("read_file", "Return the text of a file in the work tree.", {"path": _STR},
              ["path"]),
    _function("write_file", "Create or overwrite a file in the work tree with the given text.",
              {"path": _STR, "content": _STR}, ["path", "content"]),
    _function("str_replace", "Replace exactly one occurrence of old_str with new_str in a file.",
              {"path": _STR, "old_str": _STR, "new_str": _STR}, ["path", "old_str", "new_str"]),
    _function(SUBMIT, "Submit the work for the current request; hidden tests then check it.",
              {"summary": _STR}, []),
]

TOOL_NAMES = frozenset(tool["function"]["name"] for tool in TOOLS)


class ToolError(Exception):
    """A tool call the agent got wrong; its message becomes the observation."""


@dataclass(frozen=True)
class Observation:
    text: str
    error: bool = False
    submitted: bool = False


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    dropped = len(text) - 2 * half
    return f"{text[:half]}\n[... {dropped} characters truncated ...]\n{text[-half:]}"


class ToolBox:
    def __init__(self, sandbox: Sandbox, observation_limit: int = 8_000,
                 command_timeout: float = 120.0) -> None:
        self.sandbox = sandbox
        self.observation_limit = observation_limit
        self.command_timeout = command_timeout
        self._handlers: dict[str, Callable[[dict[str, Any]], str]] = {
            "bash": self._bash, "read_file": self._read, "write_file": self._write,
            "str_replace": self._replace, SUBMIT: lambda args: "Submitted for verification.",
        }

    def run(self, name: str, arguments: str) -> Observation:
        try:
            handler = self._handlers.get(name)
            if handler is None:
                raise ToolError(f"unknown tool {name!r}; available: "
                                + ", ".join(self._handlers))
            text = handler(parse_arguments(arguments))
        except ToolError as exc:
            return Observation(f"Error: {exc}", error=True)
        except PathOutsideWorkTree as exc:
            return Observation(f"Error: path outside the work tree: {exc}", error=True)
        except (SandboxError, OSError, UnicodeDecodeError) as exc:
            return Observation(f"Error: {exc}", error=True)
        return Observation(truncate(text, self.observation_limit), submitted=name == SUBMIT)

    def _bash(self, args: dict[str, Any]) -> str:
        result = self.sandbox.exec(_text(args, "command"), timeout=self.command_timeout)
        note = f" (timed out after {self.command_timeout:.0f}s)" if result.timed_out else ""
        output = result.stdout + (("\n" + result.stderr) if result.stderr else "")
        return f"exit code: {result.exit_code}{note}\n{output}"

    def _read(self, args: dict[str, Any]) -> str:
        return self.sandbox.read_file(_path(args))

    def _write(self, args: dict[str, Any]) -> str:
        path = _path(args)
        content = _text(args, "content", allow_empty=True)
        self.sandbox.write_file(path, content)
        return f"Wrote {len(content)} characters to {path}."

    def _replace(self, args: dict[str, Any]) -> str:
        path = _path(args)
        old = _text(args, "old_str")
        new = _text(args, "new_str", allow_empty=True)
        text = self.sandbox.read_file(path)
        count = text.count(old)
        if count == 0:
            raise ToolError(f"old_str was not found in {path}; read the file and copy the "
                            "text exactly, whitespace included")
        if count > 1:
            raise ToolError(f"old_str occurs {count} times in {path}; include more context "
                            "so that it matches exactly once")
        self.sandbox.write_file(path, text.replace(old, new, 1))
        return f"Replaced 1 occurrence in {path}."


def parse_arguments(raw: str) -> dict[str, Any]:
    """A tool call's arguments: a JSON object, else ToolError saying what is wrong."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ToolError(f"arguments are not valid JSON ({exc.msg} at position {exc.pos})") \
            from exc
    if not isinstance(value, dict):
        raise ToolError("arguments must be a JSON object")
    return value


def _text(args: dict[str, Any], key: str, allow_empty: bool = False) -> str:
    value = args.get(key)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ToolError(f"argument {key!r} must be a non-empty string")
    return value


def _path(args: dict[str, Any]) -> str:
    path = _text(args, "path")
    normal = posixpath.normpath(path)
    if ("\x00" in path or posixpath.isabs(normal) or normal == ".." or normal.startswith("../")
            or normal == ".git" or normal.startswith(".git/")):
        raise PathOutsideWorkTree(path)
    return normal
