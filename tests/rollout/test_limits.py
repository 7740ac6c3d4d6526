"""Rollout limits from `.github/davinci.yml`, the environment and the command line, and the
journal a rollout writes as it goes."""

from __future__ import annotations

import json
from pathlib import Path

from chains.config import parse_config
from rollout.journal import FileJournal, read_journal


def test_a_repository_sets_its_rollout_limits() -> None:
    parsed = parse_config("rollout:\n  max_steps: 300\n  threshold: 0.9\n")
    assert parsed.problem is None
    assert dict(parsed.config.rollout) == {"max_steps": 300, "threshold": 0.9}
    for text, words in (("rollout:\n  max_steps: lots\n", "`max_steps` must be a whole number"),
                        ("rollout:\n  threshold: 2\n", "`threshold` must be from 0 to 1"),
                        ("rollout:\n  speed: 3\n", "`rollout` must be a mapping of"),
                        ("rollout: 5\n", "`rollout` must be a mapping of")):
        broken = parse_config(text)
        assert broken.config.rollout == () and words in (broken.problem or ""), text


def test_the_journal_keeps_every_step_and_survives_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "journals" / "chain.jsonl"
    journal = FileJournal(path)
    journal([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    journal([{"role": "tool", "tool_call_id": "1", "content": "ü" * 10}])
    assert [m["content"] for m in read_journal(path)] == ["a", "b", "ü" * 10]
    with path.open("a") as cut:  # a worker killed in the middle of a line
        cut.write(json.dumps({"role": "user", "content": "c"})[:10])
    assert len(read_journal(path)) == 3
    journal.finish()
    assert not path.exists()
