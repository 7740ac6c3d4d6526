"""The agent's tools on a real sandbox: wrong or hostile calls come back as observations."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rollout.task import Task
from rollout.tools import ToolBox, truncate


@pytest.fixture
def tools(task: Task, open_sandbox: Callable) -> ToolBox:
    return ToolBox(open_sandbox(task.base_commit), observation_limit=500)


@pytest.mark.parametrize(("name", "arguments", "message"), [
    ("launch_missiles", "{}", "unknown tool 'launch_missiles'"),
    ("bash", "{'command': 'ls'}", "not valid JSON"),
    ("bash", "[1, 2]", "must be a JSON object"),
    ("bash", "{}", "'command' must be a non-empty string"),
    ("read_file", '{"path": 7}', "'path' must be a non-empty string"),
    ("read_file", '{"path": "/etc/passwd"}', "outside the work tree"),
    ("read_file", '{"path": "calc/../../outside"}', "outside the work tree"),
    ("write_file", '{"path": ".git/hooks/pre-commit", "content": "x"}', "outside the work tree"),
    ("write_file", '{"path": "a\\u0000b", "content": "x"}', "outside the work tree"),
    ("read_file", '{"path": "calc/nowhere.py"}', "Error:"),
    ("str_replace", '{"path": "calc/core.py", "old_str": "zzz", "new_str": ""}',
     "old_str was not found"),
    ("str_replace", '{"path": "calc/core.py", "old_str": "a", "new_str": "b"}',
     "occurs 3 times"),
])
def test_wrong_calls_become_error_observations(tools: ToolBox, name: str, arguments: str,
                                               message: str) -> None:
    observation = tools.run(name, arguments)
    assert observation.error and observation.text.startswith("Error:")
    assert message in observation.text


def test_edits_and_commands_work(tools: ToolBox) -> None:
    done = tools.run("str_replace", '{"path": "calc/core.py", "old_str": "return a + b", '
                                    '"new_str": "return b + a"}')
    assert not done.error and "Replaced 1 occurrence" in done.text
    assert "return b + a" in tools.run("read_file", '{"path": "calc/core.py"}').text
    tools.run("write_file", '{"path": "notes/new.txt", "content": "hello"}')
    shown = tools.run("bash", '{"command": "cat notes/new.txt; exit 3"}')
    assert shown.text.startswith("exit code: 3") and "hello" in shown.text
    assert tools.run("submit", "").submitted


def test_long_output_keeps_head_and_tail() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    cut = truncate(text, 100)
    assert cut.startswith("line 0") and cut.rstrip().endswith("line 999")
    assert "characters truncated" in cut and len(cut) < 160
    assert truncate("short", 100) == "short"
