"""The README's first command: the whole pipeline on the sample repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_mines_rolls_out_and_exports(tmp_path: Path) -> None:
    env = {**os.environ, "DAVINCI_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "bot", "demo", "--json", "--dir",
                             str(tmp_path / "demo")], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[info" not in result.stderr, "logs are warnings and errors unless -v"
    report = json.loads(result.stdout)
    # The demo's database is its own; the way the report gives to look at it works.
    listed = subprocess.run([sys.executable, "-m", "bot", "chains", "list"], capture_output=True,
                            text=True, env={**env, "DATABASE_URL": report["database"]},
                            check=True)
    assert "#1 -references-> #2 -fixes-> #4" in listed.stdout
    assert report["pull_requests"] == 7
    assert sorted(c["prs"] for c in report["chains"]) == [[1, 2, 4], [3, 5, 6]]
    assert report["trajectories_accepted"] == 2 and report["stages_verified"] == 6
    assert report["corpus"]["records"] == 2 and report["corpus"]["mean_tool_calls"] > 0
    # The rollouts ran as `davinci run` runs them, and the same funnel is reported.
    assert [(step["name"], step["count"]) for step in report["funnel"]["steps"]] == [
        ("chains", 2), ("environment built", 2), ("eligible", 2), ("accepted", 2)]
    manifest = json.loads(Path(report["export"]["manifest"]).read_text())
    assert manifest["records"] == 2
    lines = (Path(report["export"]["directory"]) / manifest["shards"][0]["file"]).read_text()
    first = json.loads(lines.splitlines()[0])
    assert set(first) == {"messages", "tools"} and first["messages"][0]["role"] == "system"
    # Each stage of a stored trajectory says how it was verified, from the rollout's audit.
    demo_env = {**env, "DAVINCI_DATA_DIR": str(tmp_path / "demo")}
    record_id = report["rollouts"][0]["record_id"]
    shown = subprocess.run([sys.executable, "-m", "bot", "corpus", "show", record_id[:12]],
                           capture_output=True, text=True, env=demo_env, check=True)
    assert shown.stdout.count("verified: hidden tests") == 3, shown.stdout[-2000:]
    assert "runner isolated" in shown.stdout and "restored from the reference" in shown.stdout
    audit = subprocess.run([sys.executable, "-m", "bot", "corpus", "show", record_id[:12],
                            "--audit"], capture_output=True, text=True, env=demo_env,
                           check=True)
    trail = json.loads(audit.stdout)
    assert trail["accepted"] is True and trail["reason"] == ""
    assert all(check["integrity"]["isolated"] for stage in trail["stages"]
               for check in stage["checks"])
    again = subprocess.run([sys.executable, "-m", "bot", "demo", "--dir", str(tmp_path / "x"),
                            "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("not the demo's")
    refused = subprocess.run([sys.executable, "-m", "bot", "demo", "--dir",
                              str(tmp_path / "mine")], capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "not a demo directory" in refused.stderr
    assert (tmp_path / "mine" / "keep.txt").exists()
